// Host-wide CPU leases between real VMs (docs/leases.md): three pvrun VMs on this host share one
// lease directory, each with a guest thread pinned to its vCPU 1, beside a plain QEMU whose
// vCPU threads an operator pinned to the highest CPU. Everything is observed from the host: the
// lease files and their flock locks (/proc/locks), the vCPU threads' Cpus_allowed_list,
// `pvrun status --json`, and what is left after a kill -9.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {bootGuest, pvrunCommand, readyLine, type Guest} from '../../src/guest/boot.js';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {readLeases} from '../../src/host/leases.js';
import {getThreadNice, setThreadAffinity} from '../../src/host/libc.js';
import {exclusiveCpus} from '../../src/bench/matrix.js';
import {sharedFloatNice} from '../../src/hints/affinity/policy.js';
import {ensureImage} from '../../src/image/build.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {assertLogValid} from '../helpers/event-schema.js';
import {assertStatusValid} from '../helpers/status-schema.js';
import {killIfRunning} from '../helpers/host-view.js';
import {vmFromLog, within} from '../helpers/pvrun-vm.js';

/** The vCPU threads of QEMU `pid`, in vCPU order (debug-threads names them "CPU n/TCG"). */
function vcpuThreads(pid: number): number[] {
	const found: Array<[number, number]> = [];
	for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
		const m = /^CPU (\d+)\//.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'));
		if (m) found.push([Number(m[1]), Number(tid)]);
	}
	return found.sort((a, b) => a[0] - b[0]).map(([, tid]) => tid);
}

const cpus = ownCpus();

t.test(
	'three pvrun VMs and a plain QEMU pinned by hand: one lease, never on the pinned CPU, a CPU never any vCPU’s own in two VMs; a VM killed with -9 frees it for the first waiting within a second',
	{skip: cpus.length < 2 ? 'needs 2 host CPUs' : false},
	async (t) => {
		const image = await ensureImage();
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-leases-'));
		t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
		const leases = path.join(dir, 'leases');
		const [free = 0, pinned = 1] = [cpus[0], cpus.at(-1)];

		// The plain QEMU, both vCPUs pinned to the highest CPU (as libvirt's <vcpupin> would).
		const plain = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: 'sleep,600', qemuArgs: ['-name', 'debug-threads=on']});
		t.teardown(() => plain.stop());
		const vms: Array<{name: string; guest: Guest; log: string; prom: string}> = ['lease-a', 'lease-b', 'lease-c'].map((name) => {
			const log = path.join(dir, `${name}.jsonl`);
			const prom = path.join(dir, `${name}.prom`);
			const guest = bootGuest({
				kernel: image.kernel,
				initrd: image.initrd,
				cpus: 2,
				run: '/usr/share/pvrun/pin-busy.sh,0x2,600,1',
				// One lease directory for both, and the host's real /proc (the suite gives each test file its own).
				launcher: ['env', `PVRUN_LEASE_DIR=${leases}`, 'PVRUN_HOST_ROOT=/', ...pvrunCommand('--pv-log', log, '--pv-metrics', prom)],
				qemuArgs: ['-name', name],
			});
			return {name, guest, log, prom};
		});
		t.teardown(async () => {
			for (const vm of vms) await vm.guest.stop();
		});
		await plain.waitFor(readyLine, 120_000);
		const plainThreads = vcpuThreads(plain.pid);
		t.equal(plainThreads.length, 2, 'the plain QEMU’s two vCPU threads');
		for (const tid of plainThreads) setThreadAffinity(tid, [pinned]);
		for (const vm of vms) await vm.guest.waitFor('pin-busy: pinned', 120_000);
		const threads = await Promise.all(vms.map(async (vm) => (await vmFromLog(vm.log)).threads));

		// One VM leases the free CPU for its vCPU 1; the others wait.
		let view = readLeases(leases);
		const leased = await within(
			10_000,
			() => (view = readLeases(leases)).leases.length === 1 && view.owners.filter((o) => o.waitingSince !== undefined).length === 2,
		);
		t.ok(leased >= 0, `one lease, two VMs waiting, ${leased.toFixed(0)} ms after all pinned: ${JSON.stringify(view)}`);
		const [lease] = view.leases;
		t.equal(lease?.cpu, free, `leased CPU ${free}, not CPU ${pinned} that the plain QEMU is pinned to`);
		t.equal(lease?.vcpu, 1, 'for vCPU 1');
		const holder = vms.findIndex((vm) => vm.name === lease?.name);
		t.ok(holder >= 0, `held by ${lease?.name}`);
		// The one that has waited longest is served first when the CPU frees.
		const waiting = view.owners.filter((o) => o.waitingSince !== undefined).sort((a, b) => (a.waitingSince ?? 0) - (b.waitingSince ?? 0));
		const waiter = vms.findIndex((vm) => vm.name === waiting[0]?.name);
		const last = vms.findIndex((vm) => vm.name === waiting[1]?.name);
		t.ok(waiter >= 0 && last >= 0 && waiter !== last, `waiting: ${waiting.map((o) => o.name).join(', ')}, first come first`);
		const waiterThreads = threads[waiter] ?? [];
		const lastThreads = threads[last] ?? [];
		const qemuPids = vms.map((vm) => vm.guest.pid);

		// Three ask, one CPU to lease: the lease is shared (docs/leases.md#sharing). Sampled for 2 s:
		// the holder's vCPU 1 alone has CPU 0 as its only CPU, every other vCPU thread that may run
		// there does so at the lower weight, no CPU is a vCPU's own in two VMs, nobody leases CPU 1.
		t.equal(lease?.shared, true, 'the lease is shared: three VMs ask, the host has one CPU to spare');
		let wrong = 0;
		let samples = 0;
		for (const until = performance.now() + 2000; performance.now() < until; await new Promise((r) => setTimeout(r, 100))) {
			samples++;
			const masks = [holder, waiter, last].flatMap((vm) =>
				(threads[vm] ?? []).map((tid, v) => ({v: `${vms[vm]?.name} vCPU ${v}`, tid, mask: threadCpusAllowed(qemuPids[vm] ?? 0, tid)})),
			);
			const own = masks.filter((m) => m.mask.join() === String(free)).map((m) => m.v);
			const heavy = masks.filter((m) => m.mask.includes(free) && m.mask.length > 1 && getThreadNice(m.tid) < sharedFloatNice).map((m) => m.v);
			const mine = qemuPids.map((pid) => [...exclusiveCpus(pid)]).flat();
			if (
				own.join() !== `${vms[holder]?.name} vCPU 1` ||
				heavy.length ||
				new Set(mine).size !== mine.length ||
				readLeases(leases).leases.some((l) => l.cpu === pinned)
			) {
				wrong++;
				t.comment(`sample ${samples}: CPU ${free} its own: ${own.join(', ')}; sharing it at full weight: ${heavy.join(', ')}`);
			}
		}
		t.equal(wrong, 0, `in ${samples} samples only the holder’s vCPU 1 has CPU ${free} as its own, the others share it at nice ${sharedFloatNice}`);
		t.ok(
			readEventLog(vms[waiter]?.log ?? '').some((e) => e.event === 'deny' || e.event === 'leases'),
			'the waiting VM logged the denial or the others’ leases',
		);

		// pvrun status shows the lease and the wait.
		const status = await execa(process.execPath, [path.join('dist', 'cli', 'main.js'), 'status', '--json'], {
			env: {...process.env, PVRUN_LEASE_DIR: leases},
			reject: false,
		});
		t.equal(status.exitCode, 0, status.stderr);
		assertStatusValid(t, status.stdout);
		const listed = (JSON.parse(status.stdout) as {vms: Array<{qemuPid: number; leases?: Array<{cpu: number; vcpu: number}>; leaseWaitingSince?: number}>}).vms;
		t.match(
			listed.find((v) => v.qemuPid === qemuPids[holder]),
			{leases: [{cpu: free, vcpu: 1}]},
			'status: the holder’s lease',
		);
		t.ok(listed.find((v) => v.qemuPid === qemuPids[waiter])?.leaseWaitingSince, 'status: the others wait');
		t.ok(listed.find((v) => v.qemuPid === qemuPids[last])?.leaseWaitingSince);

		// --pv-metrics: each VM's file says what it leases, or that it waits (rewritten every 5 s).
		const metric = (vm: number, line: RegExp) => {
			try {
				return line.test(fs.readFileSync(vms[vm]?.prom ?? '', 'utf8'));
			} catch {
				return false;
			}
		};
		t.ok(
			(await within(6000, () => metric(holder, new RegExp(`^pvrun_lease\\{vm="[^"]+",cpu="${free}",vcpu="1"\\} 1$`, 'm')))) >= 0,
			'the holder’s metrics show its lease',
		);
		t.ok((await within(6000, () => metric(waiter, /^pvrun_lease_waiting\{vm="[^"]+"\} 1$/m))) >= 0, 'the others’ show them waiting');

		// The holder dies at once, its helper and its QEMU: no clean-up runs, the kernel frees its locks.
		const helper = lease?.pid ?? 0;
		killIfRunning(helper);
		killIfRunning(qemuPids[holder] ?? 0);
		const killedAt = performance.now();
		let after = readLeases(leases);
		const taken = await within(5000, () => (after = readLeases(leases)).leases.some((l) => l.name === vms[waiter]?.name));
		t.ok(taken >= 0 && taken < 1000, `the waiting VM leased a CPU ${taken.toFixed(0)} ms after the kill (within a second): ${JSON.stringify(after.leases)}`);
		t.same(
			after.leases.map((l) => [l.cpu, l.vcpu]),
			[[free, 1]],
			`CPU ${free} for its vCPU 1`,
		);
		t.notOk(
			after.owners.some((o) => o.pid === helper),
			'the dead pvrun owns nothing',
		);
		const granted = await within(2000, () => threadCpusAllowed(qemuPids[waiter] ?? 0, waiterThreads[1] ?? 0).join() === String(free));
		t.ok(granted >= 0, `its vCPU 1 runs on CPU ${free} ${(performance.now() - killedAt).toFixed(0)} ms after the kill`);
		t.ok(
			readLeases(leases).owners.some((o) => o.name === vms[last]?.name && o.waitingSince !== undefined),
			`${vms[last]?.name}, which asked last, still waits`,
		);
		t.notOk(
			lastThreads.some((tid) => threadCpusAllowed(qemuPids[last] ?? 0, tid).includes(free) && getThreadNice(tid) < sharedFloatNice),
			`and shares CPU ${free} only at the lower weight`,
		);
		t.same(
			plainThreads.map((tid) => threadCpusAllowed(plain.pid, tid)),
			[[pinned], [pinned]],
			'the plain QEMU’s pins are untouched',
		);
		assertLogValid(t, vms[waiter]?.log ?? '');
		t.ok(
			(await within(6000, () => metric(waiter, new RegExp(`^pvrun_lease\\{vm="[^"]+",cpu="${free}",vcpu="1"\\} 1$`, 'm')))) >= 0,
			'its metrics show the lease',
		);
		await vms[waiter]?.guest.stop();
		t.ok((await within(5000, () => !fs.existsSync(vms[waiter]?.prom ?? ''))) >= 0, 'and are removed when the VM ends');
	},
);
