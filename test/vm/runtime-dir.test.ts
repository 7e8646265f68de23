// Where pvrun keeps its run directories: the choice from the environment, and the
// checks that keep a directory someone else made (or can write to) from being used.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {PvrunError, UsageError} from '../../src/util/errors.js';
import {allRuntimeRoots, ensureRuntimeRoot, runtimeRoot, type RuntimeRoot} from '../../src/vm/runtime-dir.js';
import {fakeRoot} from '../helpers/run-dirs.js';

const isRoot = process.getuid?.() === 0;

t.test('runtimeRoot: PVRUN_RUNTIME_DIR, then /run/pvrun for root, then $XDG_RUNTIME_DIR/pvrun, then <tmpdir>/pvrun-<uid>', async (t) => {
	const cases: Array<[NodeJS.ProcessEnv, number, RuntimeRoot]> = [
		[{PVRUN_RUNTIME_DIR: '/srv/vms/', XDG_RUNTIME_DIR: '/run/user/0'}, 0, {dir: '/srv/vms', from: 'PVRUN_RUNTIME_DIR'}],
		[{PVRUN_RUNTIME_DIR: '/srv/vms'}, 1000, {dir: '/srv/vms', from: 'PVRUN_RUNTIME_DIR'}],
		[{}, 0, {dir: '/run/pvrun', from: 'root'}],
		[{XDG_RUNTIME_DIR: '/run/user/0'}, 0, {dir: '/run/pvrun', from: 'root'}],
		[{PVRUN_RUNTIME_DIR: ''}, 0, {dir: '/run/pvrun', from: 'root'}],
		[{XDG_RUNTIME_DIR: '/run/user/1000'}, 1000, {dir: '/run/user/1000/pvrun', from: 'XDG_RUNTIME_DIR'}],
		[{XDG_RUNTIME_DIR: 'run/user/1000'}, 1000, {dir: '/var/tmp/pvrun-1000', from: 'TMPDIR'}],
		[{}, 1000, {dir: '/var/tmp/pvrun-1000', from: 'TMPDIR'}],
	];
	for (const [env, uid, want] of cases) t.same(runtimeRoot(env, uid, '/var/tmp'), want, `${JSON.stringify(env)} uid ${uid}`);
	const error = t.throws(() => runtimeRoot({PVRUN_RUNTIME_DIR: 'vms'}, 0)) as Error;
	t.ok(error instanceof UsageError, 'a relative PVRUN_RUNTIME_DIR: a usage error (exit 2)');
	t.equal(error.message, 'PVRUN_RUNTIME_DIR must be an absolute path, not "vms"');
});

t.test("ensureRuntimeRoot: a root pvrun chooses is made 0700, and used only while it is the caller's alone", async (t) => {
	const tmp = fakeRoot(t);
	const uid = process.getuid?.() ?? 0;
	const chosen = (name: string): RuntimeRoot => ({dir: path.join(tmp, name), from: 'TMPDIR'});
	const made = chosen(`pvrun-${uid}`);
	ensureRuntimeRoot(made, uid);
	t.equal(fs.statSync(made.dir).mode & 0o777, 0o700, 'made, 0700');
	t.doesNotThrow(() => ensureRuntimeRoot(made, uid), 'again: used as it is');

	const refused = (root: RuntimeRoot, why: string, message: string): void => {
		const error = t.throws(() => ensureRuntimeRoot(root, uid), why) as Error;
		t.ok(error instanceof PvrunError && !(error instanceof UsageError), `${why}: a PvrunError (exit 1)`);
		t.equal(error.message, `will not use pvrun's runtime directory ${root.dir}: ${message} (set PVRUN_RUNTIME_DIR to a directory of your own to use another)`);
	};
	const open = chosen('open');
	fs.mkdirSync(open.dir, {mode: 0o700});
	fs.chmodSync(open.dir, 0o777);
	refused(open, 'writable by others', 'others may write to it (mode 777)');
	fs.chmodSync(open.dir, 0o770);
	refused(open, 'writable by its group', 'others may write to it (mode 770)');
	fs.chmodSync(open.dir, 0o755);
	t.doesNotThrow(() => ensureRuntimeRoot(open, uid), 'readable by others is their business: 0755 is used');

	const link = chosen('link');
	fs.symlinkSync(made.dir, link.dir);
	refused(link, 'a symbolic link', 'it is a symbolic link');
	const file = chosen('file');
	fs.writeFileSync(file.dir, '');
	refused(file, 'a file', 'it is not a directory');
	if (isRoot) {
		const foreign = chosen('pvrun-65534');
		fs.mkdirSync(foreign.dir, {mode: 0o700});
		fs.chownSync(foreign.dir, 65534, 65534);
		refused(foreign, "another user's", `it belongs to uid 65534, not ${uid}`);
	} else t.comment('not root: a directory of another user is not made');

	const under = chosen('file/pvrun-0');
	const error = t.throws(() => ensureRuntimeRoot(under, uid)) as Error;
	t.equal(error.message, `cannot create pvrun's runtime directory ${under.dir}: ENOTDIR (set PVRUN_RUNTIME_DIR to a directory of your own to use another)`);
});

t.test('ensureRuntimeRoot: PVRUN_RUNTIME_DIR is made with its parents, and otherwise used as the user gave it', async (t) => {
	const tmp = fakeRoot(t);
	const given: RuntimeRoot = {dir: path.join(tmp, 'a', 'b'), from: 'PVRUN_RUNTIME_DIR'};
	ensureRuntimeRoot(given);
	t.ok(fs.statSync(given.dir).isDirectory(), 'made with its parents');
	fs.chmodSync(given.dir, 0o1777);
	t.doesNotThrow(() => ensureRuntimeRoot(given), 'a shared directory the user chose (as /tmp was): used (each run directory is 0700)');
	fs.writeFileSync(path.join(tmp, 'f'), '');
	const error = t.throws(() => ensureRuntimeRoot({dir: path.join(tmp, 'f', 'run'), from: 'PVRUN_RUNTIME_DIR'})) as Error;
	t.equal(error.message, `cannot create pvrun's runtime directory ${path.join(tmp, 'f', 'run')}: ENOTDIR (PVRUN_RUNTIME_DIR)`);
});

t.test("allRuntimeRoots: root's, /run/user's, the <tmpdir>/pvrun-<uid> directories, and the caller's own", async (t) => {
	const tmp = fakeRoot(t);
	for (const name of ['pvrun-1000', 'pvrun-65534', 'pvrun-x', 'pvrun-12-ab']) fs.mkdirSync(path.join(tmp, name));
	fs.writeFileSync(path.join(tmp, 'pvrun-2000'), ''); // a file: not a root
	const own: RuntimeRoot = {dir: path.join(tmp, 'own-not-made'), from: 'PVRUN_RUNTIME_DIR'};
	const roots = allRuntimeRoots(own, tmp);
	t.same(
		roots.filter((r) => r.startsWith(tmp)),
		[path.join(tmp, 'pvrun-1000'), path.join(tmp, 'pvrun-65534'), own.dir],
		"each user's under the tmpdir, then the caller's (listed even before it is made)",
	);
	t.equal(roots.includes('/run/pvrun'), fs.existsSync('/run/pvrun'), "root's when it exists");
	for (const r of roots.filter((r) => r.startsWith('/run/user/'))) t.match(r, /^\/run\/user\/\d+\/pvrun$/);
});
