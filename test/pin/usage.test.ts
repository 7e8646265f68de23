// How busy a vCPU thread is, from its CPU ticks: judged only over a whole
// window, forgetting what lies before it, and afresh after reset().
import {spawn} from 'node:child_process';
import t from 'tap';
import {VcpuUsage, threadTicks} from '../../src/pin/usage.js';

t.test('the busy fraction over the window, from fake ticks', async (t) => {
	const ticks = new Map<number, number>([[7, 0]]);
	const usage = new VcpuUsage(1, 1000, 100, (_pid, tid) => ticks.get(tid));
	usage.sample([7], 0);
	t.equal(usage.busy(7), undefined, 'no window yet');
	ticks.set(7, 50); // 0.5 s of CPU in 1 s
	usage.sample([7], 1000);
	t.equal(usage.busy(7), 0.5);
	ticks.set(7, 150); // then 1 s of CPU in 1 s: the window slides to the last second
	usage.sample([7], 2000);
	t.equal(usage.busy(7), 1);
	usage.reset(7);
	usage.sample([7], 2100);
	t.equal(usage.busy(7), undefined, 'after reset, judged afresh');
	usage.sample([], 2200);
	t.equal(usage.busy(7), undefined, 'a thread no longer sampled is forgotten');
});

t.test('real ticks: a busy process uses about a CPU, a sleeping one none', async (t) => {
	const busy = spawn('sh', ['-c', 'while :; do :; done'], {stdio: 'ignore'});
	const idle = spawn('sleep', ['30'], {stdio: 'ignore'});
	t.teardown(() => {
		busy.kill('SIGKILL');
		idle.kill('SIGKILL');
	});
	const pids = [busy.pid ?? 0, idle.pid ?? 0];
	const usage = new VcpuUsage(0, 1000, 100, (_pid, tid) => threadTicks(tid, tid));
	usage.sample(pids);
	await new Promise((r) => setTimeout(r, 1200));
	usage.sample(pids);
	t.ok((usage.busy(pids[0] ?? 0) ?? 0) > 0.3, `the busy loop is busy (${usage.busy(pids[0] ?? 0)})`);
	t.ok((usage.busy(pids[1] ?? 0) ?? 1) < 0.05, `sleep is not (${usage.busy(pids[1] ?? 0)})`);
});
