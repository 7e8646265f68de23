// Where pvrun keeps its run directories (sockets, state file): the user's own
// runtime directory, as libvirt and tmux do, so that `pvrun status` lists the
// caller's VMs and nobody else's, and a reboot clears them. In order:
// $PVRUN_RUNTIME_DIR as given; /run/pvrun for root; $XDG_RUNTIME_DIR/pvrun;
// else <tmpdir>/pvrun-<uid>. A directory pvrun chooses itself is made
// 0700 and used only while it is the caller's, a real directory, and writable
// by nobody else: in a shared /tmp another user could have made it first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {PvrunError, UsageError} from '../util/errors.js';

export interface RuntimeRoot {
	/** The directory the run directories go into. */
	dir: string;
	/** What chose it: the variable, or "root". */
	from: 'PVRUN_RUNTIME_DIR' | 'root' | 'XDG_RUNTIME_DIR' | 'TMPDIR';
}

/** The caller's runtime root, from the environment (pure: nothing is made or checked). */
export function runtimeRoot(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0, tmpdir: string = os.tmpdir()): RuntimeRoot {
	const given = env['PVRUN_RUNTIME_DIR'];
	if (given) {
		if (!path.isAbsolute(given)) throw new UsageError(`PVRUN_RUNTIME_DIR must be an absolute path, not ${JSON.stringify(given)}`);
		return {dir: path.resolve(given), from: 'PVRUN_RUNTIME_DIR'};
	}
	if (uid === 0) return {dir: '/run/pvrun', from: 'root'};
	const xdg = env['XDG_RUNTIME_DIR'];
	// The XDG base directory specification: a relative path is invalid and ignored.
	if (xdg && path.isAbsolute(xdg)) return {dir: path.join(xdg, 'pvrun'), from: 'XDG_RUNTIME_DIR'};
	return {dir: path.join(tmpdir, `pvrun-${uid}`), from: 'TMPDIR'};
}

/**
 * Make `root` if it is missing and check that it can hold run directories: a PvrunError
 * naming it otherwise. One pvrun chose is the caller's alone (see above); one the user
 * gave (PVRUN_RUNTIME_DIR) is made with its parents and otherwise used as it is.
 */
export function ensureRuntimeRoot(root: RuntimeRoot, uid: number = process.getuid?.() ?? 0): void {
	const given = root.from === 'PVRUN_RUNTIME_DIR';
	try {
		fs.mkdirSync(root.dir, {mode: 0o700, recursive: given});
	} catch (error) {
		const code = (error as NodeJS.ErrnoException).code;
		if (code !== 'EEXIST') throw new PvrunError(`cannot create pvrun's runtime directory ${root.dir}: ${code ?? String(error)}${hint(root)}`, {cause: error});
	}
	if (given) return;
	let stat: fs.Stats;
	try {
		stat = fs.lstatSync(root.dir);
	} catch (error) {
		throw new PvrunError(`cannot use pvrun's runtime directory ${root.dir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}${hint(root)}`, {
			cause: error,
		});
	}
	const wrong = !stat.isDirectory()
		? stat.isSymbolicLink()
			? 'it is a symbolic link'
			: 'it is not a directory'
		: stat.uid !== uid
			? `it belongs to uid ${stat.uid}, not ${uid}`
			: (stat.mode & 0o022) !== 0
				? `others may write to it (mode ${(stat.mode & 0o777).toString(8)})`
				: undefined;
	if (wrong) throw new PvrunError(`will not use pvrun's runtime directory ${root.dir}: ${wrong}${hint(root)}`);
}

const hint = (root: RuntimeRoot): string =>
	root.from === 'PVRUN_RUNTIME_DIR' ? ' (PVRUN_RUNTIME_DIR)' : ' (set PVRUN_RUNTIME_DIR to a directory of your own to use another)';

/**
 * Every runtime root on this machine that may hold VMs (`pvrun status --all`): root's,
 * each user's under /run/user, the <tmpdir>/pvrun-<uid> ones, and the caller's own.
 */
export function allRuntimeRoots(own: RuntimeRoot = runtimeRoot(), tmpdir: string = os.tmpdir()): string[] {
	const roots = new Set<string>(['/run/pvrun']);
	for (const uid of list('/run/user')) if (/^\d+$/.test(uid)) roots.add(path.join('/run/user', uid, 'pvrun'));
	for (const name of list(tmpdir)) if (/^pvrun-\d+$/.test(name)) roots.add(path.join(tmpdir, name));
	roots.add(own.dir);
	return [...roots].filter((dir) => dir === own.dir || isDirectory(dir));
}

function list(dir: string): string[] {
	try {
		return fs.readdirSync(dir).sort();
	} catch {
		return [];
	}
}

function isDirectory(dir: string): boolean {
	try {
		return fs.lstatSync(dir).isDirectory();
	} catch {
		return false;
	}
}
