// Fake pvrun run directories in a private root, for what reads them
// (src/vm/state.ts, pvrun status); and a private runtime root that shows which
// run directories a real pvrun made there.
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {Test} from 'tap';
import type {VmState} from '../../src/vm/state.js';

/** A pid that is not running: a child that has exited and been reaped. */
export const deadPid = spawnSync('true').pid ?? 0;

export function fakeRoot(t: Pick<Test, 'teardown'>): string {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-status-test-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	return root;
}

export function runDir(root: string, pid: number, hex: string): {id: string; runDir: string} {
	const id = `pvrun-${pid}-${hex}`;
	const dir = path.join(root, id);
	fs.mkdirSync(dir, {mode: 0o700});
	return {id, runDir: dir};
}

export function validState(id: string, pid: number, extra: Partial<VmState> = {}): VmState {
	return {version: 1, id, pvrunPid: pid, qemuPid: pid, qmpSocket: `/tmp/${id}/qmp.sock`, startedAt: '2025-01-01T00:00:00.000Z', ...extra};
}

export function writeJson(dir: string, data: unknown): void {
	fs.writeFileSync(path.join(dir, 'state.json'), typeof data === 'string' ? data : JSON.stringify(data));
}

/**
 * A temporary directory of its own for a pvrun command (its TMPDIR and runtime root: `env`), so
 * that what it leaves is told apart from the files of tests that run beside it: the run
 * directories that appear in it (pvrun-<pid>-<hex>; the shared memory in /dev/shm has the same
 * name) are watched until `seen()`.
 */
export function privateTmpdir(
	t: Pick<Test, 'teardown'>,
	prefix: string,
): {tmp: string; env: {TMPDIR: string; PVRUN_RUNTIME_DIR: string}; seen: () => string[]} {
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
	const runs = new Set<string>();
	const watcher = fs.watch(tmp, (_event, name) => {
		if (name !== null && /^pvrun-\d+-[0-9a-f]+$/.test(name)) runs.add(name);
	});
	t.teardown(() => {
		watcher.close();
		fs.rmSync(tmp, {recursive: true, force: true});
	});
	return {
		tmp,
		env: {TMPDIR: tmp, PVRUN_RUNTIME_DIR: tmp},
		seen: () => {
			watcher.close();
			return [...runs];
		},
	};
}
