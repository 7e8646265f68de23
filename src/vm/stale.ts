// What a pvrun that was killed with SIGKILL leaves: its run directory
// (<runtime root>/pvrun-<pid>-<hex>/: runtime-dir.ts) and its shared memory (/dev/shm/pvrun-<pid>-<hex>).
// No process can clean up after its own SIGKILL, so the next pvrun does.
// A leftover is removed only when nothing can still use it: it is this
// user's, older than a minute, its pvrun pid is not running, and no QEMU
// listens on its QMP socket (a daemonized QEMU outlives its pvrun, and a pid
// from another pid namespace sharing this directory proves nothing).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {processAlive} from '../host/proc.js';
import {runtimeRoot} from './runtime-dir.js';

const runDirName = /^pvrun-(\d+)-[0-9a-f]+$/;
/** Younger leftovers may belong to a pvrun that is starting (in another pid namespace). */
const minAgeMs = 60_000;
const connectMs = 500;

/** Remove the run directories (and their shared memory) in `root` that nobody uses any more; resolves to their names. */
export async function removeStaleRuns(root: string = runtimeRoot().dir, now = Date.now()): Promise<string[]> {
	let names: string[];
	try {
		names = fs.readdirSync(root);
	} catch {
		return [];
	}
	const removed: string[] = [];
	await Promise.all(
		names.map(async (name) => {
			const match = runDirName.exec(name);
			if (!match || Number(match[1]) === process.pid || processAlive(Number(match[1]))) return;
			const dir = path.join(root, name);
			if (!isOurs(dir, true, now)) return;
			if (await listens(path.join(dir, 'qmp.sock'))) return;
			try {
				fs.rmSync(dir, {recursive: true, force: true});
				const shm = path.join('/dev/shm', name);
				if (isOurs(shm, false, now)) fs.rmSync(shm, {force: true});
				removed.push(name);
			} catch {
				// not ours to remove after all
			}
		}),
	);
	return removed.sort();
}

/** Whether `file` is this user's (a directory if `dir`, else a regular file), not a link, and older than a minute. */
function isOurs(file: string, dir: boolean, now: number): boolean {
	try {
		const stat = fs.lstatSync(file);
		if (dir ? !stat.isDirectory() : !stat.isFile()) return false;
		if (stat.uid !== process.getuid?.()) return false;
		return now - stat.mtimeMs >= minAgeMs;
	} catch {
		return false;
	}
}

/** Whether something accepts connections on the unix socket `file` (within 0.5 s). */
function listens(file: string): Promise<boolean> {
	if (!fs.existsSync(file)) return Promise.resolve(false);
	return new Promise((resolve) => {
		const socket = net.connect(file);
		const done = (result: boolean) => {
			clearTimeout(timer);
			socket.destroy();
			resolve(result);
		};
		// Unsure (no answer in time): keep the files.
		const timer = setTimeout(() => done(true), connectMs);
		socket.once('connect', () => done(true));
		socket.once('error', (error: NodeJS.ErrnoException) => done(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT'));
	});
}
