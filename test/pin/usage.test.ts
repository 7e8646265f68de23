// How much a vCPU thread wants to run: judged only over a whole window,
// forgetting what lies before it, and afresh after reset(); waiting for a CPU
// counts as wanting one.
import {spawn} from 'node:child_process';
import t, {type Test} from 'tap';
import {ownCpus} from '../../src/host/cpus.js';
import {setThreadAffinity} from '../../src/host/libc.js';
import {VcpuUsage, threadDemandNs} from '../../src/pin/usage.js';

t.test('the busy fraction over the window, from a fake demand', async (t) => {
	const ns = new Map<number, number>([[7, 0]]);
	const usage = new VcpuUsage(1, 1000, (_pid, tid) => ns.get(tid));
	usage.sample([7], 0);
	t.equal(usage.busy(7), undefined, 'no window yet');
	ns.set(7, 0.5e9); // wanted a CPU 0.5 s of 1 s
	usage.sample([7], 1000);
	t.equal(usage.busy(7), 0.5);
	ns.set(7, 1.5e9); // then all of the next second: the window slides to the last second
	usage.sample([7], 2000);
	t.equal(usage.busy(7), 1);
	usage.reset(7);
	usage.sample([7], 2100);
	t.equal(usage.busy(7), undefined, 'after reset, judged afresh');
	usage.sample([], 2200);
	t.equal(usage.busy(7), undefined, 'a thread no longer sampled is forgotten');
});

/** `sh` busy loops (or a sleep), started now and killed at the end of the test. */
function spawnAll(t: Pick<Test, 'teardown'>, commands: string[][]): number[] {
	return commands.map(([cmd = 'sleep', ...args]) => {
		const child = spawn(cmd, args, {stdio: 'ignore'});
		t.teardown(() => void child.kill('SIGKILL'));
		return child.pid ?? 0;
	});
}

const loop = ['sh', '-c', 'while :; do :; done'];

t.test('real threads: a busy process wants a CPU, a sleeping one does not', async (t) => {
	const [busy = 0, idle = 0] = spawnAll(t, [loop, ['sleep', '30']]);
	const usage = new VcpuUsage(0, 1000, (_pid, tid) => threadDemandNs(tid, tid));
	usage.sample([busy, idle]);
	await new Promise((r) => setTimeout(r, 1200));
	usage.sample([busy, idle]);
	t.ok((usage.busy(busy) ?? 0) > 0.8, `the busy loop is busy (${usage.busy(busy)})`);
	t.ok((usage.busy(idle) ?? 1) < 0.05, `sleep is not (${usage.busy(idle)})`);
});

t.test('two busy threads sharing one CPU each run half the time and are both seen busy', async (t) => {
	const cpu = ownCpus()[0] ?? 0;
	const pids = spawnAll(t, [loop, loop]);
	for (const pid of pids) setThreadAffinity(pid, [cpu]);
	const usage = new VcpuUsage(0, 1000, (_pid, tid) => threadDemandNs(tid, tid));
	usage.sample(pids);
	await new Promise((r) => setTimeout(r, 1200));
	usage.sample(pids);
	for (const pid of pids) t.ok((usage.busy(pid) ?? 0) > 0.8, `busy though it ran about half the time (${usage.busy(pid)})`);
});
