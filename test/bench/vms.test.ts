// What the benchmarks set up around a measured VM (src/bench/vms.ts): static
// placement, busy host processes confined to the scenario's CPUs, and the
// host's description. Neighbour VMs and QMP placement boot guests: the matrix's
// smoke run (matrix.test.ts) and the matrix file's (ci.test.ts) use them.
import fs from 'node:fs';
import t from 'tap';
import {ownCpus} from '../../src/host/cpus.js';
import {environment, hostBefore, startHostHogs, staticPlace} from '../../src/bench/vms.js';

t.test("static placement: vCPU i on the i-th CPU, round the scenario's CPUs", async (t) => {
	t.same(staticPlace(3, [4, 6]), [
		{cpus: [4], nice: 0},
		{cpus: [6], nice: 0},
		{cpus: [4], nice: 0},
	]);
});

t.test('busy host processes run on the CPUs given, and their CPU time is counted', async (t) => {
	const cpu = ownCpus().at(-1) ?? 0;
	const hogs = startHostHogs(1, [cpu]);
	t.teardown(hogs.stop);
	await new Promise((resolve) => setTimeout(resolve, 500));
	const pids = fs
		.readdirSync('/proc')
		.filter((p) => /^\d+$/.test(p))
		.filter((p) => {
			try {
				return fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(process.pid);
			} catch {
				return false;
			}
		});
	const allowed = pids.map((p) => /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]);
	t.ok(allowed.includes(String(cpu)), `a child of this process runs on CPU ${cpu} only (${allowed.join(' ')})`);
	t.ok(hogs.cpuNs() > 0, 'it used CPU time');
});

t.test("the host's description", async (t) => {
	const env = await environment('abc');
	t.equal(env.commit, 'abc');
	t.ok(env.cpus >= 1);
	t.match(env.qemu, /^QEMU emulator version /);
	t.ok(['tcg', 'kvm'].includes(env.accel));
});

t.test('the host before a run: its load average and busy share over a second', async (t) => {
	const {loadBefore, busyBefore} = await hostBefore();
	t.equal(loadBefore.length, 3);
	t.ok(loadBefore.every((l) => l >= 0));
	t.ok(busyBefore >= 0 && busyBefore <= 1, `busy ${busyBefore}`);
});
