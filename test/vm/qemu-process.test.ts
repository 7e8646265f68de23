// The QEMU process helpers: watching a process that is not pvrun's child,
// ending by the signal that ended QEMU, and naming a missing program.
// Needs `make build` (the ending is tried in a separate process on dist/).
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {processAlive} from '../../src/host/proc.js';
import {endLike, findProgram, shellStatus, watchPid} from '../../src/vm/qemu-process.js';
import {PvrunError} from '../../src/util/errors.js';
import {packageRoot} from '../../src/util/paths.js';

t.test('watchPid notices a process ending, zombie or reaped', async (t) => {
	const sleeper = spawn('sleep', ['30']);
	t.teardown(() => sleeper.kill('SIGKILL'));
	const pid = sleeper.pid ?? 0;
	const watched = watchPid(pid, 20);
	t.ok(processAlive(pid), 'runs');
	let ended = false;
	void watched.exited.then(() => (ended = true));
	await new Promise((r) => setTimeout(r, 100));
	t.notOk(ended, 'not ended while it runs');
	sleeper.kill('SIGTERM');
	const started = performance.now();
	t.same(await watched.exited, {code: null, signal: null}, "its status is its parent's to know");
	t.ok(performance.now() - started < 2000, 'noticed within 2 s');
	t.notOk(processAlive(pid));
});

t.test('the status a shell reports', async (t) => {
	t.equal(shellStatus({code: 3, signal: null}), 3);
	t.equal(shellStatus({code: null, signal: 'SIGKILL'}), 137);
	t.equal(shellStatus({code: null, signal: 'SIGINT'}), 130);
	t.equal(endLike({code: 5, signal: null}), 5, 'an exit code is returned for the caller to exit with');
});

/** Run endLike(status) in a fresh process; how that process ended. */
function endIn(status: object): Promise<{code: number | null; signal: NodeJS.Signals | null}> {
	const module = path.join(packageRoot, 'dist', 'vm', 'qemu-process.js');
	const code = `import(${JSON.stringify(module)}).then((m) => { process.on('SIGTERM', () => {}); process.exitCode = m.endLike(${JSON.stringify(status)}); })`;
	const child = spawn(process.execPath, ['-e', code], {stdio: 'ignore'});
	return new Promise((resolve) => child.once('exit', (code, signal) => resolve({code, signal})));
}

t.test('a QEMU killed by a signal: pvrun dies by the same signal (its own handlers set aside)', async (t) => {
	t.same(await endIn({code: null, signal: 'SIGTERM'}), {code: null, signal: 'SIGTERM'});
	t.same(await endIn({code: null, signal: 'SIGSEGV'}), {code: null, signal: 'SIGSEGV'}, 'a crash signal too (without a core of pvrun)');
	t.same(await endIn({code: 0, signal: null}), {code: 0, signal: null});
});

/** What findProgram throws (undefined if it finds the program). */
function findError(program: string): unknown {
	try {
		findProgram(program, 'run make setup');
		return undefined;
	} catch (error) {
		return error;
	}
}

t.test('a program that is not there or cannot run: one line naming the fix', async (t) => {
	const missing = findError('pvrun-no-such-program');
	t.ok(missing instanceof PvrunError);
	t.match(missing, {message: 'pvrun-no-such-program not found: run make setup', exitCode: 127});
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-prog-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const plain = path.join(dir, 'qemu');
	fs.writeFileSync(plain, '#!/bin/sh\n', {mode: 0o644});
	t.match(findError(plain), {message: `${plain} is not executable: check its permissions`, exitCode: 126});
	fs.chmodSync(plain, 0o755);
	t.equal(findError(plain), undefined, 'found once executable');
	t.match(findError(dir), {message: `${dir} is a directory, not a program: check the path`, exitCode: 126}, 'a directory: 126, saying so');
	const saved = process.env['PATH'];
	t.teardown(() => void (process.env['PATH'] = saved));
	process.env['PATH'] = `/nonexistent:${dir}`;
	t.equal(findProgram('qemu', ''), plain, 'a name is looked up in PATH, as execvp does');
});
