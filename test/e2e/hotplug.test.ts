// End to end, CPU hot-plug: a vCPU added through the user's own QMP monitor
// (next to pvrun's) shows up in pvrun's view of the vCPU threads, so hints
// for it can be acted on.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {readyLine} from '../../src/guest/boot.js';
import {connectQmp} from '../../src/qemu/qmp.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {bootThroughPvrun} from '../helpers/pvrun-vm.js';

t.test("a hot-plugged vCPU joins pvrun's vCPU threads", async (t) => {
	const userQmp = path.join(os.tmpdir(), `pvrun-test-qmp-${process.pid}.sock`);
	t.teardown(() => fs.rmSync(userQmp, {force: true}));
	const {guest, logFile} = await bootThroughPvrun(t, {
		cpus: 1,
		run: 'sleep,600',
		qemuArgs: ['-smp', '1,maxcpus=2', '-qmp', `unix:${userQmp},server=on,wait=off`],
	});
	await guest.waitFor(readyLine, 60_000);
	const qmp = await connectQmp(userQmp, {timeoutMs: 10_000});
	t.teardown(() => qmp.close());
	const hotpluggable = await qmp.execute<Array<{props: Record<string, number>; 'qom-path'?: string; type: string}>>('query-hotpluggable-cpus');
	const free = hotpluggable.find((c) => c['qom-path'] === undefined);
	t.ok(free, 'QEMU offers a slot for a second vCPU');
	if (!free) return;
	await qmp.execute('device_add', {driver: free.type, id: 'hotcpu1', ...free.props});
	const threads = await qmp.vcpuThreads();
	t.equal(threads.length, 2, 'QEMU now runs two vCPU threads');
	let seen: number[] = [];
	for (let i = 0; i < 80 && seen.length < 2; i++) {
		seen = (readEventLog(logFile)
			.filter((e) => e.event === 'vcpus')
			.at(-1)?.['threads'] ?? []) as number[];
		if (seen.length < 2) await new Promise((r) => setTimeout(r, 100));
	}
	t.same(
		seen,
		threads.map((v) => v.threadId),
		'pvrun logged the new vCPU thread within 8 s',
	);
});
