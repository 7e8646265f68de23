// The host's speed (src/bench/host-speed.ts): a positive rate, steady when
// nothing changes, and lower when this process shares its CPU with a busy one.
import {spawn} from 'node:child_process';
import t from 'tap';
import {measureHostSpeed} from '../../src/bench/host-speed.js';
import {ownCpus} from '../../src/host/cpus.js';
import {setThreadAffinity} from '../../src/host/libc.js';

t.test('a CPU shared with a busy process measures slower', async (t) => {
	const cpu = ownCpus().at(-1) ?? 0;
	const all = ownCpus();
	// The whole process (its main thread is pid's) on one CPU, then a busy process beside it there.
	setThreadAffinity(process.pid, [cpu]);
	t.teardown(() => setThreadAffinity(process.pid, all));
	const alone = measureHostSpeed(300);
	t.ok(alone > 0, `alone: ${alone} M rounds/s`);
	const hog = spawn('taskset', ['-c', String(cpu), 'sh', '-c', 'while :; do :; done'], {stdio: 'ignore'});
	t.teardown(() => void hog.kill('SIGKILL'));
	await new Promise((resolve) => setTimeout(resolve, 200));
	const shared = measureHostSpeed(300);
	t.ok(shared < alone * 0.8, `sharing the CPU: ${shared} (alone ${alone})`);
});
