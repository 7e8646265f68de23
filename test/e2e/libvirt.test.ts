// End to end, libvirt as a real client: scripts/libvirt.sh brings up
// qemu:///system; libvirt probes pvrun's capabilities, starts a domain whose
// <emulator> is pvrun (as libvirt-qemu, with its JSON -object/-device, fd=N
// monitor, -S, -sandbox), the guest pins a thread to vCPU 1 and the host
// thread of vCPU 1 gets a CPU of its own; `virsh destroy`, and `virsh shutdown`
// (the guest's ACPI power button), leave no process or file behind. Needs root.
import fs from 'node:fs';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {pvrunCommand} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {slotOf} from '../../src/vm/devices.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {runtimeRoot} from '../../src/vm/runtime-dir.js';
import {hasExclusiveCpu, within} from '../helpers/pvrun-vm.js';
import {helperOf} from '../helpers/host-view.js';
import {
	alive,
	domainLogOf,
	domainPid,
	domainState,
	domainXml,
	libvirtUp,
	loggedCommandLine,
	procStatus,
	pvrunLauncher,
	pvrunLeftovers,
	qemuUserRoot,
	stageDomain,
	userIds,
	vcpuInfo,
	vcpuStats,
	vcpuThreads,
	virsh,
	waitForConsole,
	qemuUser,
	type LibvirtSession,
} from '../helpers/libvirt.js';

const ms = (since: number) => `${Math.round(performance.now() - since)} ms`;

const skip = process.getuid?.() === 0 ? false : 'needs root: libvirtd for qemu:///system runs as root';

t.test('libvirt starts, probes and stops pvrun as its emulator', {skip}, async (t) => {
	const image = await ensureImage();
	const session = await libvirtUp(t);
	t.comment(`scripts/libvirt.sh up: ${Math.round(session.upMs)} ms`);

	await t.test("libvirt's capability probe of pvrun", async (t) => {
		const started = performance.now();
		const caps = await virsh('domcapabilities', '--emulatorbin', pvrunLauncher, '--virttype', 'qemu');
		t.comment(`virsh domcapabilities --emulatorbin bin/pvrun: ${ms(started)} (libvirt runs it with -machine none ... -daemonize -pidfile)`);
		t.match(caps, `<path>${pvrunLauncher}</path>`, 'libvirt knows pvrun as an emulator');
		t.match(caps, /<domain>qemu<\/domain>/, 'for TCG domains');
		t.match(caps, /<machine>pc-i440fx-[\d.]+<\/machine>/, 'with the machine types of the QEMU under it');
		t.same(pvrunFilesOf(qemuUser), [], 'the probe left no pvrun file (it ran plain QEMU)');
	});

	await t.test("a domain's life: start with libvirt's default devices, hints, operators' pins, suspend, reboot, managedsave, destroy", (t) =>
		aDomainsLife(t, session, image),
	);

	await t.test('virsh shutdown (transient domain): the guest powers off, pvrun and QEMU end, nothing left', (t) => shutdown(t, session, image));

	t.same(pvrunFilesOf(qemuUser), [], `no pvrun file of ${qemuUser} left in /dev/shm or /tmp`);
});

/** The vCPU 1 pins pvrun logged so far (the guest's pin-loop pins a busy process to vCPU 1 every 3 s). */
const pinsOf = (eventLog: string) => readEventLog(eventLog).filter((e) => e.event === 'pin' && e['vcpu'] === 1).length;

/** Within `ms`, a pin pvrun logs after `before` pins, and vCPU 1 exclusive: the hints act (the ms it took, or -1). */
async function aNewPin(eventLog: string, before: number, name: string, ms = 10_000): Promise<number> {
	const started = performance.now();
	if ((await within(ms, () => pinsOf(eventLog) > before, 50)) < 0) return -1;
	const threads = await vcpuThreads(name);
	const qemuPid = Number(procStatus(threads[0] ?? 0, 'Tgid'));
	return (await within(ms, () => hasExclusiveCpu(qemuPid, threads, 1) || pinsOf(eventLog) > before + 1, 20)) >= 0 ? performance.now() - started : -1;
}

/** The lines pvrun (and QEMU) wrote on stderr for the domain's runs: libvirt's log of it. */
const stderrOf = (name: string) => fs.readFileSync(domainLogOf(name), 'utf8');

async function aDomainsLife(t: Test, session: LibvirtSession, image: {kernel: string; initrd: string}) {
	const name = `pvrun-e2e-${process.pid}`;
	const d = stageDomain(session, name, image);
	fs.writeFileSync(`${d.dir}/domain.xml`, domainXml(d, {run: '/usr/share/pvrun/pin-loop.sh,0x2,2,1', pvArgs: ['--pv-log', d.eventLog], onReboot: 'restart'}));
	session.cleanup(async () => {
		await virsh('destroy', name).catch(() => {});
		await virsh('managedsave-remove', name).catch(() => {});
		await virsh('undefine', name).catch(() => {});
	});
	session.onFailureShow(domainLogOf(name));
	session.onFailureShow(d.console);
	session.onFailureShow(d.eventLog);

	await virsh('define', `${d.dir}/domain.xml`);
	const started = performance.now();
	await virsh('start', name);
	t.comment(`virsh start: ${ms(started)}`);
	const commandLine = loggedCommandLine(name);
	t.comment(`libvirt's command line: ${commandLine}`);
	// What an ordinary domain gets from libvirt, each device at an address libvirt chose (QEMU refused
	// the balloon at slot 2 when pvrun's key=value device was created first and took that slot).
	const placed = [...commandLine.matchAll(/'(\{"driver":"[^']*)'/g)].map(
		(m) => JSON.parse(m[1] ?? '{}') as {driver: string; id?: string; bus?: string; addr?: string},
	);
	const onRoot = placed.filter((d) => d.bus === 'pci.0' && d.addr !== undefined && d.id !== undefined);
	t.ok(
		['virtio-balloon-pci', 'piix3-usb-uhci', 'virtio-blk-pci'].every((driver) => onRoot.some((d) => d.driver === driver)),
		"libvirt's default balloon and USB controller, and the virtio disk, each at an address libvirt chose",
		{placed},
	);
	t.ok(
		onRoot.some((d) => slotOf(d.addr) === 2),
		'one of them at slot 2',
	);
	const pci = JSON.parse(await virsh('qemu-monitor-command', name, '{"execute":"query-pci"}')) as {
		return: Array<{devices: Array<{slot: number; qdev_id: string}>}>;
	};
	const slots = new Map((pci.return[0]?.devices ?? []).map((d) => [d.qdev_id, d.slot]));
	t.same(
		onRoot.map((d) => slots.get(d.id ?? '')),
		onRoot.map((d) => slotOf(d.addr)),
		"every one of libvirt's devices is where libvirt put it",
	);
	t.equal(slots.get('pvrun-ivshmem'), 31, "pvrun's devices are on the highest free slot, away from libvirt's");

	const pvrunPid = domainPid(name);
	t.equal(procStatus(pvrunPid, 'Uid').split(/\s+/)[0], String(userIds(qemuUser).uid), `libvirt runs pvrun as ${qemuUser}`);
	const threads = await vcpuThreads(name);
	t.equal(threads.length, 2, 'libvirt sees two vCPU threads (QMP query-cpus-fast on its own monitor)');
	const qemuPid = Number(procStatus(threads[0] ?? 0, 'Tgid'));
	t.equal(qemuPid, pvrunPid, "the pid in libvirt's pid file is QEMU's: pvrun exec'd QEMU in place");
	const root = qemuUserRoot(qemuUser);
	const pvrunEnv = Object.fromEntries(
		fs
			.readFileSync(`/proc/${pvrunPid}/environ`, 'utf8')
			.split('\0')
			.filter(Boolean)
			.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
	);
	t.equal(
		runtimeRoot(pvrunEnv, userIds(qemuUser).uid, pvrunEnv['TMPDIR'] ?? '/tmp').dir,
		root,
		`its runtime root is ${root}: libvirt sets no TMPDIR nor XDG_RUNTIME_DIR`,
	);
	t.match(fs.statSync(root), {uid: userIds(qemuUser).uid, mode: 0o40700}, `made by pvrun, ${qemuUser}'s alone`);
	const helper = helperOf(qemuPid, root);
	const [node = 'node', ...cli] = pvrunCommand();
	const listed = async (...args: string[]) =>
		(JSON.parse((await execa(node, [...cli, 'status', '--json', ...args])).stdout) as {vms: Array<{qemuPid: number; uid: number}>}).vms.filter(
			(v) => v.qemuPid === qemuPid,
		);
	t.same(await listed(), [], "root's pvrun status lists its own VMs: not libvirt-qemu's");
	t.match(await listed('--all'), [{uid: userIds(qemuUser).uid}], `pvrun status --all lists it, as ${qemuUser}'s`);
	const cpusetOf = (pid: number, tid = pid) => /^\d+:cpuset:(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/cgroup`, 'utf8'))?.[1] ?? '?';
	t.comment(`cpuset cgroups: QEMU's main thread ${cpusetOf(qemuPid)}, vCPU 1 ${cpusetOf(qemuPid, threads[1] ?? 0)}, pvrun's helper ${cpusetOf(helper)}`);
	t.same(
		threads.map((tid) => fs.readFileSync(`/proc/${qemuPid}/task/${tid}/comm`, 'utf8').trim()),
		['CPU 0/TCG', 'CPU 1/TCG'],
		"one TCG thread per vCPU (libvirt's -name ...,debug-threads=on)",
	);

	const pinnedLine = await waitForConsole(d.console, 'pin-loop: pinned', 90_000);
	t.comment(`guest: ${pinnedLine} (${ms(started)} after virsh start)`);
	const allowed = (tid: number) => threadCpusAllowed(qemuPid, tid);
	const pinnedAfter = await within(5000, () => hasExclusiveCpu(qemuPid, threads, 1));
	t.comment(
		`vCPU 1 exclusive ${pinnedAfter.toFixed(0)} ms after the guest's line; vCPU 0: ${allowed(threads[0] ?? 0).join(',')}, vCPU 1: ${allowed(threads[1] ?? 0).join(',')}`,
	);
	t.ok(pinnedAfter >= 0, 'within 5 s vCPU 1 has exactly one CPU that no other vCPU thread has');
	t.ok((await within(1000, () => pinsOf(d.eventLog) > 0)) >= 0, 'pvrun (as libvirt-qemu) logged the decision');
	// libvirt reads the vCPUs under the pid it knows: QEMU's.
	const info = await vcpuInfo(name);
	t.comment(`virsh vcpuinfo: ${info.map((v) => `vCPU ${v.vcpu} on CPU ${v.cpu}, ${v.cpuTime} s, affinity ${v.affinity}`).join('; ')}`);
	t.equal(info.length, 2, 'virsh vcpuinfo lists both vCPUs');
	t.ok(
		info.every((v) => v.cpuTime > 0),
		'virsh vcpuinfo shows CPU time for every vCPU (not 0 s)',
	);
	t.ok(
		info.every((v, i) => allowed(threads[i] ?? 0).includes(v.cpu)),
		'and a CPU each vCPU may run on',
	);
	const stats = await vcpuStats(name);
	t.ok(Number(stats.get('vcpu.0.time')) > 0 && Number(stats.get('vcpu.1.time')) > 0, 'virsh domstats --vcpu: vcpu.N.time is real', {
		stats: Object.fromEntries(stats),
	});
	const denied = readEventLog(d.eventLog)
		.filter((e) => e.event === 'warning')
		.map((e) => String(e['message']));
	t.comment(`pvrun's warnings as ${qemuUser}: ${denied.length ? [...new Set(denied.map((m) => m.replace(/\d+/g, 'N')))].join(' | ') : 'none'}`);

	await t.test('the operator wins: virsh vcpupin, virsh emulatorpin, taskset', (t) => operatorPins(t, name, d.eventLog, qemuPid, threads));

	await t.test('virsh suspend and resume: hints act afterwards', async (t) => {
		await virsh('suspend', name);
		t.match(await domainState(name), /^paused/);
		await new Promise((r) => setTimeout(r, 1000));
		const before = pinsOf(d.eventLog);
		await virsh('resume', name);
		t.ok((await aNewPin(d.eventLog, before, name)) >= 0, 'a new pin after resume');
	});

	await t.test('virsh reboot: the guest boots again, hints act afterwards', async (t) => {
		const boots = () => fs.readFileSync(d.console, 'utf8').split('pvrun-guest: ready').length - 1;
		const booted = boots();
		await virsh('reboot', name);
		t.ok((await within(60_000, () => boots() > booted, 200)) >= 0, 'the guest booted again (libvirt: power button, then reset and cont)');
		t.equal(domainPid(name), qemuPid, 'the same QEMU');
		const before = pinsOf(d.eventLog);
		t.ok((await aNewPin(d.eventLog, before, name, 20_000)) >= 0, 'a new pin after the reboot');
	});

	let restoredPid = 0;
	await t.test('virsh managedsave, then virsh start: the VM comes back where it was, hints act afterwards', async (t) => {
		await virsh('managedsave', name);
		t.match(await domainState(name), /^shut off \(saved\)/, 'saved and stopped');
		t.ok((await within(5000, () => !alive(qemuPid) && pvrunLeftovers(qemuPid, qemuUser).length === 0)) >= 0, "the saved VM's QEMU and pvrun's files are gone");
		const console = fs.readFileSync(d.console, 'utf8').length;
		await virsh('start', name);
		t.match(await domainState(name), /^running \(restored\)/, 'restored from the managed save');
		restoredPid = domainPid(name);
		t.not(restoredPid, qemuPid, 'a new QEMU');
		t.notMatch(fs.readFileSync(d.console, 'utf8').slice(console), /pvrun-guest: ready/, 'the guest did not boot again: it went on');
		const before = pinsOf(d.eventLog);
		t.ok((await aNewPin(d.eventLog, before, name, 20_000)) >= 0, 'a new pin after the restore');
		const events = readEventLog(d.eventLog);
		const restart = events.findLastIndex((e) => e.event === 'start');
		const after = events.slice(restart);
		t.ok(
			after.some((e) => e.event === 'reset' && e['reason'] === 'restored'),
			"the new pvrun forgot the old session's ring and feedback (it had the saved bytes)",
		);
		// The guest's programs went on running in the restored VM, so that pin may come before the reload.
		const loaded = await within(
			20_000,
			() =>
				readEventLog(d.eventLog)
					.slice(restart)
					.some((e) => e.event === 'program'),
			100,
		);
		t.ok(loaded >= 0, 'and had the agent load its program again (its task iterator reports every thread pinned now)');
	});

	const destroyStarted = performance.now();
	await virsh('destroy', name);
	t.comment(`virsh destroy: ${ms(destroyStarted)}`);
	t.match(await domainState(name), /^shut off/, 'the domain is shut off');
	const last = restoredPid || qemuPid;
	t.ok((await within(5000, () => !alive(last) && pvrunLeftovers(last, qemuUser).length === 0)) >= 0, 'neither QEMU nor pvrun is left');
	t.same(pvrunLeftovers(last, qemuUser), [], 'no shared-memory file or run directory of that pvrun left');
	t.ok(readEventLog(d.eventLog).filter((e) => e.event === 'exit').length >= 2, 'pvrun logged each exit (it cleaned up, it was not killed)');

	await virsh('undefine', name);
	t.notOk((await virsh('list', '--all', '--name')).split('\n').includes(name), 'the domain is undefined');
}

/** virsh vcpupin --live and emulatorpin --live, and taskset from the host: pvrun leaves what the operator pinned alone, says so once, and takes it back when the pin is lifted. */
async function operatorPins(t: Test, name: string, eventLog: string, qemuPid: number, threads: number[]) {
	const vcpu1 = threads[1] ?? 0;
	const all = ownCpus();
	const allList = `${all[0]}-${all.at(-1)}`;
	const statusOf = async () => {
		const [node = 'node', ...cli] = pvrunCommand();
		// The VM is libvirt-qemu's: root lists it with --all.
		const r = await execa(node, [...cli, 'status', '--all', '--json'], {reject: false});
		const vm = (
			JSON.parse(r.stdout) as {vms: Array<{qemuPid: number; placement?: Array<{vcpu: number; operator?: boolean}>; kernelCpus?: Record<string, number[]>}>}
		).vms.find((v) => v.qemuPid === qemuPid);
		return {operator: vm?.placement?.find((p) => p.vcpu === 1)?.operator === true, kernel: vm?.kernelCpus?.['1']};
	};
	const said = (text: string) => stderrOf(name).split(text).length - 1;
	const holdLine = "vCPU 1's CPUs were set outside pvrun";
	const backLine = `vCPU 1 may run on all of CPUs ${allList} again`;

	for (const [how, pin, unpin] of [
		['virsh vcpupin --live', () => virsh('vcpupin', name, '1', String(all[0]), '--live'), () => virsh('vcpupin', name, '1', allList, '--live')],
		['taskset from the host', () => execa('taskset', ['-pc', String(all[0]), String(vcpu1)]), () => execa('taskset', ['-pc', allList, String(vcpu1)])],
	] as const) {
		const held = said(holdLine);
		const back = said(backLine);
		await pin();
		t.ok((await within(3000, () => said(holdLine) > held, 50)) >= 0, `${how}: pvrun says on stderr (libvirt's domain log) that it leaves vCPU 1 alone`);
		// The state file follows within half a second (pvrun publishes placements at most every 500 ms).
		await new Promise((r) => setTimeout(r, 700));
		const status = await statusOf();
		t.ok(status.operator, `${how}: pvrun status says so`);
		t.same(status.kernel, [all[0]], `${how}: pvrun status shows the CPUs the kernel has`);
		// A pin-loop period and more: pvrun does not fight the operator.
		const steady = await within(3500, () => threadCpusAllowed(qemuPid, vcpu1).join(',') !== String(all[0]), 50);
		t.equal(steady, -1, `${how}: vCPU 1 stays where the operator put it`);
		t.equal(said(holdLine), held + 1, `${how}: said once`);
		const pins = pinsOf(eventLog);
		await unpin();
		t.ok((await within(3000, () => said(backLine) > back, 50)) >= 0, `${how}: back to every CPU, pvrun says it places vCPU 1 again`);
		t.ok((await aNewPin(eventLog, pins, name)) >= 0, `${how}: and the guest's next pin gets vCPU 1 a CPU of its own again`);
	}

	const othersLine = "QEMU's other threads' CPUs were set outside pvrun";
	const othersBack = `QEMU's other threads may run on all of CPUs ${allList} again`;
	await virsh('emulatorpin', name, String(all.at(-1)), '--live');
	t.ok((await within(3000, () => said(othersLine) === 1, 50)) >= 0, "virsh emulatorpin --live: pvrun leaves QEMU's other threads alone, and says so");
	t.equal(
		await within(3500, () => threadCpusAllowed(qemuPid, qemuPid).join(',') !== String(all.at(-1)), 50),
		-1,
		"QEMU's main thread stays where the operator put it",
	);
	await virsh('emulatorpin', name, allList, '--live');
	t.ok((await within(3000, () => said(othersBack) === 1, 50)) >= 0, 'emulatorpin back to every CPU: pvrun places them again');
}

async function shutdown(t: Test, session: LibvirtSession, image: {kernel: string; initrd: string}) {
	const name = `pvrun-e2e-off-${process.pid}`;
	const d = stageDomain(session, name, image);
	fs.writeFileSync(`${d.dir}/domain.xml`, domainXml(d, {run: 'sleep,600', pvArgs: ['--pv-log', d.eventLog]}));
	session.cleanup(() => virsh('destroy', name).catch(() => {}));
	session.onFailureShow(domainLogOf(name));
	session.onFailureShow(d.console);

	const started = performance.now();
	await virsh('create', `${d.dir}/domain.xml`);
	const pvrunPid = domainPid(name);
	await waitForConsole(d.console, 'pvrun-guest: ready', 90_000);
	await new Promise((r) => setTimeout(r, 1000)); // acpid opens its input devices just before the ready line
	await virsh('shutdown', name);
	await waitForConsole(d.console, 'pvrun-guest: power button: powering off', 20_000);
	const goneAfter = await within(20_000, () => !alive(pvrunPid));
	t.comment(`virsh shutdown: guest powered off, pvrun gone ${ms(started)} after virsh create`);
	t.ok(goneAfter >= 0, 'after the guest powers off, libvirt ends pvrun (its SIGTERM reaches QEMU) within 20 s');
	t.ok(await domainGone(name, 10_000), 'the transient domain is gone');
	t.match(fs.readFileSync(domainLogOf(name), 'utf8'), /shutting down, reason=shutdown/, 'libvirt saw a guest shutdown');
	t.same(pvrunLeftovers(pvrunPid, qemuUser), [], 'no shared-memory file or run directory left');
	t.ok(
		readEventLog(d.eventLog).some((e) => e.event === 'exit'),
		'pvrun logged its exit',
	);
}

/** Whether libvirt forgets the domain within `ms` (transient domains go when they stop). */
async function domainGone(name: string, ms: number): Promise<boolean> {
	const started = performance.now();
	do {
		if (!(await virsh('list', '--all', '--name')).split('\n').includes(name)) return true;
		await new Promise((r) => setTimeout(r, 200));
	} while (performance.now() - started < ms);
	return false;
}

/** pvrun's files (pvrun-<pid>-*) in /dev/shm, /tmp and the user's runtime root owned by `user`. */
function pvrunFilesOf(user: string): string[] {
	const {uid} = userIds(user);
	return ['/dev/shm', '/tmp', qemuUserRoot(user)]
		.filter((dir) => fs.existsSync(dir))
		.flatMap((dir) =>
			fs
				.readdirSync(dir)
				.filter((n) => /^pvrun-\d+-/.test(n))
				.map((n) => `${dir}/${n}`)
				.filter((p) => {
					try {
						return fs.statSync(p).uid === uid;
					} catch {
						return false;
					}
				}),
		);
}
