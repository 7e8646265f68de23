import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {takenCpus} from '../../src/host/taken.js';

/** A host's /proc and /sys in a folder: files by path. */
function fixture(files: Record<string, string>): string {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-taken-'));
	for (const [file, text] of Object.entries(files)) {
		fs.mkdirSync(path.dirname(path.join(root, file)), {recursive: true});
		fs.writeFileSync(path.join(root, file), text);
	}
	return root;
}

const vcpu = (pid: number, tid: number, index: number, cpus: string) => ({
	[`proc/${pid}/task/${tid}/comm`]: `CPU ${index}/TCG\n`,
	[`proc/${pid}/task/${tid}/status`]: `Name:\tCPU ${index}/TCG\nCpus_allowed:\tf\nCpus_allowed_list:\t${cpus}\n`,
});

t.test('taken: isolated and nohz_full CPUs, and the CPUs a plain QEMU pinned its vCPUs to', async (t) => {
	const root = fixture({
		'sys/devices/system/cpu/online': '0-7\n',
		'sys/devices/system/cpu/isolated': '7\n',
		'sys/devices/system/cpu/nohz_full': '(null)\n',
		// libvirt's <vcpupin>: vCPU 0 on CPU 2, vCPU 1 on 3-4; its main thread anywhere.
		'proc/100/comm': 'qemu-system-x86\n',
		'proc/100/cmdline': 'qemu-system-x86_64\0-name\0guest=plain\0',
		'proc/100/task/100/comm': 'qemu-system-x86\n',
		'proc/100/task/100/status': 'Cpus_allowed_list:\t0-7\n',
		...vcpu(100, 101, 0, '2'),
		...vcpu(100, 102, 1, '3-4'),
		// Without debug-threads=on its threads have no vCPU names: a pinned one is still taken.
		'proc/150/comm': 'qemu-system-x86\n',
		'proc/150/task/151/comm': 'qemu-system-x86\n',
		'proc/150/task/151/status': 'Cpus_allowed_list:\t6\n',
		// A plain QEMU left to float: load, not a placement.
		'proc/200/comm': 'qemu-system-x86\n',
		'proc/200/cmdline': 'qemu-system-x86_64\0',
		...vcpu(200, 201, 0, '0-7'),
		// A pvrun VM's QEMU that leases in the same directory: its grants are leases, not taken CPUs.
		'proc/300/comm': 'qemu-system-x86\n',
		...vcpu(300, 301, 0, '5'),
		// Not a QEMU at all.
		'proc/400/comm': 'bash\n',
		...vcpu(400, 401, 0, '1'),
		'proc/self/comm': 'node\n',
	});
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	const taken = takenCpus(root, new Set([300]));
	t.same([...taken.cpus].sort(), [2, 3, 4, 6, 7]);
	t.same(Object.fromEntries(taken.why), {
		7: 'isolated',
		2: 'pinned by QEMU 100 (vCPU 0)',
		3: 'pinned by QEMU 100 (vCPU 1)',
		4: 'pinned by QEMU 100 (vCPU 1)',
		6: 'pinned by QEMU 150 (thread 151)',
	});
});

t.test('taken: a pvrun VM (its agent port on the command line) is left out, whatever directory it leases in', async (t) => {
	const root = fixture({
		'proc/300/comm': 'qemu-system-x86\n',
		'proc/300/cmdline': 'qemu-system-x86_64\0-device\0virtserialport,chardev=pvrun-agent,name=org.pvrun.agent.0\0',
		...vcpu(300, 301, 0, '5'),
		'sys/devices/system/cpu/online': '0-7\n',
	});
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	t.same([...takenCpus(root).cpus], []);
});

t.test('taken: nothing to read (another OS, a bare fixture) is nothing taken; a malformed list is ignored', async (t) => {
	const root = fixture({'proc/9/comm': 'qemu-system-x86\n', ...vcpu(9, 10, 0, 'x-y')});
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	t.same([...takenCpus(root).cpus], []);
	t.same([...takenCpus(path.join(root, 'missing')).cpus], []);
});

t.test('taken on this host: a real scan finishes and names only CPUs', async (t) => {
	const started = performance.now();
	const taken = takenCpus();
	t.ok([...taken.cpus].every((c) => Number.isInteger(c) && c >= 0));
	t.ok(performance.now() - started < 2000, `took ${(performance.now() - started).toFixed(1)} ms`);
});
