// /proc readers: this process's own stat line, and the machine's CPU time with its stolen part.
import t from 'tap';
import {spawn} from 'node:child_process';
import {
	busyShare,
	machineCpuTicks,
	processAlive,
	processThreads,
	threadSchedstat,
	processStartTicks,
	processStat,
	procStatFields,
	stolenPercent,
} from '../../src/host/proc.js';

t.test("a process's stat fields are split after the name, whatever the name holds", async (t) => {
	const fields = procStatFields(process.pid);
	t.equal(fields?.[1], String(process.pid));
	t.match(fields?.[3], /^[RSDT]$/, 'field 3 is the state');
	t.equal(procStatFields(process.pid, process.pid)?.[1], String(process.pid), 'and a thread of it');
	t.equal(procStatFields(2 ** 22 + 1), undefined, 'a process that cannot exist has none');
});

t.test('the machine CPU time grows; the stolen part is a share of it', async (t) => {
	const before = machineCpuTicks();
	t.ok(before.total > 0 && before.steal >= 0 && before.steal <= before.total, `total ${before.total} ticks, stolen ${before.steal}`);
	const until = Date.now() + 50;
	while (Date.now() < until); // burn a few ticks
	const after = machineCpuTicks();
	t.ok(after.total > before.total, 'it grows');
	const share = stolenPercent(before, after);
	t.ok(share >= 0 && share <= 100, `stolen over 50 ms: ${share.toFixed(2)} %`);
	t.equal(stolenPercent({total: 100, steal: 10}, {total: 300, steal: 60}), 25, '50 of 200 ticks');
	t.equal(stolenPercent(before, before), 0, 'no time, nothing stolen');
});

t.test('the busy share: what was not idle, between 0 and 1', async (t) => {
	t.equal(busyShare({total: 100, idle: 50}, {total: 300, idle: 200}), 0.25, '50 of 200 ticks busy');
	t.equal(busyShare({total: 100, idle: 50}, {total: 100, idle: 50}), 0, 'no time: 0');
	const before = machineCpuTicks();
	t.ok(before.idle >= 0 && before.idle <= before.total, `idle ${before.idle} of ${before.total} ticks`);
	const until = Date.now() + 300;
	while (Date.now() < until); // one CPU busy
	const share = busyShare(before, machineCpuTicks());
	t.ok(share > 0 && share <= 1, `over 300 ms of one busy CPU: ${(share * 100).toFixed(0)} % of the machine`);
});

t.test('a process is alive until it exits, is a zombie, or its pid names another process', async (t) => {
	t.ok(processAlive(process.pid), 'this process');
	const start = processStartTicks(process.pid);
	t.ok(start !== undefined && processAlive(process.pid, start), 'with its own start time');
	t.notOk(processAlive(process.pid, (start ?? 0) + 1), 'another start time: a reused pid, not the process meant');
	t.notOk(processAlive(2 ** 22 + 1), 'a pid that cannot exist');
	t.notOk(processAlive(0), 'no pid');
	const child = spawn('sleep', ['30']);
	const pid = child.pid ?? 0;
	t.teardown(() => child.kill('SIGKILL'));
	t.ok(processAlive(pid), 'a child that runs');
	t.equal(processStat(pid)?.ppid, process.pid, 'whose parent is this process');
	// Reaped only once Node hears of the exit: in between it is a zombie, which is not alive either.
	child.kill('SIGKILL');
	const started = performance.now();
	while (processAlive(pid) && performance.now() - started < 2000) await new Promise((r) => setTimeout(r, 10));
	t.notOk(processAlive(pid), 'killed: not alive (a zombie, or gone)');
});

t.test("a process's threads, and a thread's time on and waiting for a CPU", async (t) => {
	t.ok(processThreads(process.pid).includes(process.pid), 'this process, its main thread among its threads');
	t.same(processThreads(2 ** 22 + 1), [], 'a process that cannot exist has none');
	const sched = threadSchedstat(process.pid, process.pid);
	if (sched) t.ok(sched.runNs > 0 && sched.waitNs >= 0, `run ${sched.runNs} ns, waited ${sched.waitNs} ns`);
	else t.comment('no schedstat on this kernel');
	t.equal(threadSchedstat(2 ** 22 + 1, 2 ** 22 + 1), undefined, 'a thread that cannot exist has none');
});
