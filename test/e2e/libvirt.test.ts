// End to end, libvirt as a real client: scripts/libvirt.sh brings up
// qemu:///system; libvirt probes pvrun's capabilities, starts a domain whose
// <emulator> is pvrun (as libvirt-qemu, with its JSON -object/-device, fd=N
// monitor, -S, -sandbox), the guest pins a thread to vCPU 1 and the host
// thread of vCPU 1 gets a CPU of its own; `virsh destroy`, and `virsh shutdown`
// (the guest's ACPI power button), leave no process or file behind. Needs root.
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {ensureImage} from '../../src/image/build.js';
import {slotOf} from '../../src/vm/devices.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {hasExclusiveCpu, within} from '../helpers/pvrun-vm.js';
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

	await t.test('virsh define/start: the guest pins a thread, the host thread of vCPU 1 gets its own CPU; virsh destroy cleans up', (t) =>
		pinAndDestroy(t, session, image),
	);

	await t.test('virsh shutdown (transient domain): the guest powers off, pvrun and QEMU end, nothing left', (t) =>
		shutdown(t, session, image),
	);

	t.same(pvrunFilesOf(qemuUser), [], `no pvrun file of ${qemuUser} left in /dev/shm or /tmp`);
});

async function pinAndDestroy(t: Test, session: LibvirtSession, image: {kernel: string; initrd: string}) {
	const name = `pvrun-e2e-${process.pid}`;
	const d = stageDomain(session, name, image);
	fs.writeFileSync(`${d.dir}/domain.xml`, domainXml(d, {run: '/usr/share/pvrun/pin-busy.sh,0x2,20', pvArgs: ['--pv-log', d.eventLog]}));
	session.cleanup(async () => {
		await virsh('destroy', name).catch(() => {});
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
	const placed = [...commandLine.matchAll(/'(\{"driver":"[^']*)'/g)].map((m) => JSON.parse(m[1] ?? '{}') as {driver: string; id?: string; bus?: string; addr?: string});
	const onRoot = placed.filter((d) => d.bus === 'pci.0' && d.addr !== undefined && d.id !== undefined);
	t.ok(['virtio-balloon-pci', 'piix3-usb-uhci', 'virtio-blk-pci'].every((driver) => onRoot.some((d) => d.driver === driver)), "libvirt's default balloon and USB controller, and the virtio disk, each at an address libvirt chose", {placed});
	t.ok(onRoot.some((d) => slotOf(d.addr) === 2), 'one of them at slot 2');
	const pci = JSON.parse(await virsh('qemu-monitor-command', name, '{"execute":"query-pci"}')) as {return: Array<{devices: Array<{slot: number; qdev_id: string}>}>};
	const slots = new Map((pci.return[0]?.devices ?? []).map((d) => [d.qdev_id, d.slot]));
	t.same(onRoot.map((d) => slots.get(d.id ?? '')), onRoot.map((d) => slotOf(d.addr)), "every one of libvirt's devices is where libvirt put it");
	t.equal(slots.get('pvrun-ivshmem'), 31, "pvrun's devices are on the highest free slot, away from libvirt's");

	const pvrunPid = domainPid(name);
	t.equal(procStatus(pvrunPid, 'Uid').split(/\s+/)[0], String(userIds(qemuUser).uid), `libvirt runs pvrun as ${qemuUser}`);
	const threads = await vcpuThreads(name);
	t.equal(threads.length, 2, 'libvirt sees two vCPU threads (QMP query-cpus-fast on its own monitor)');
	const qemuPid = Number(procStatus(threads[0] ?? 0, 'Tgid'));
	t.equal(qemuPid, pvrunPid, "the pid in libvirt's pid file is QEMU's: pvrun exec'd QEMU in place");
	t.same(
		threads.map((tid) => fs.readFileSync(`/proc/${qemuPid}/task/${tid}/comm`, 'utf8').trim()),
		['CPU 0/TCG', 'CPU 1/TCG'],
		"one TCG thread per vCPU (libvirt's -name ...,debug-threads=on)",
	);

	const pinnedLine = await waitForConsole(d.console, 'pin-busy: pinned', 90_000);
	t.comment(`guest: ${pinnedLine} (${ms(started)} after virsh start)`);
	const allowed = (tid: number) => threadCpusAllowed(qemuPid, tid).join(',');
	const pinnedAfter = await within(5000, () => hasExclusiveCpu(qemuPid, threads, 1));
	t.comment(`vCPU 1 exclusive ${pinnedAfter.toFixed(0)} ms after the guest's line; vCPU 0: ${allowed(threads[0] ?? 0)}, vCPU 1: ${allowed(threads[1] ?? 0)}`);
	t.ok(pinnedAfter >= 0, 'within 5 s vCPU 1 has exactly one CPU that no other vCPU thread has');
	// pvrun logs a decision after applying it: a moment later.
	t.ok((await within(1000, () => readEventLog(d.eventLog).some((e) => e.event === 'pin' && e['vcpu'] === 1))) >= 0, 'pvrun (as libvirt-qemu) logged the decision');
	// libvirt reads the vCPUs under the pid it knows: QEMU's.
	const info = await vcpuInfo(name);
	t.comment(`virsh vcpuinfo: ${info.map((v) => `vCPU ${v.vcpu} on CPU ${v.cpu}, ${v.cpuTime} s, affinity ${v.affinity}`).join('; ')}`);
	t.equal(info.length, 2, 'virsh vcpuinfo lists both vCPUs');
	t.ok(info.every((v) => v.cpuTime > 0), 'virsh vcpuinfo shows CPU time for every vCPU (not 0 s)');
	const exclusive = threadCpusAllowed(qemuPid, threads[1] ?? 0);
	t.same(info[1] && {cpu: info[1].cpu, affinity: info[1].affinity}, {cpu: exclusive[0], affinity: ownCpus().map((c) => (c === exclusive[0] ? 'y' : '-')).join('')}, "virsh vcpuinfo: vCPU 1 runs on its own CPU, as the kernel says");
	const stats = await vcpuStats(name);
	t.ok(Number(stats.get('vcpu.0.time')) > 0 && Number(stats.get('vcpu.1.time')) > 0, 'virsh domstats --vcpu: vcpu.N.time is real', {stats: Object.fromEntries(stats)});
	const denied = readEventLog(d.eventLog).filter((e) => e.event === 'warning').map((e) => String(e['message']));
	t.comment(`pvrun's warnings as ${qemuUser}: ${denied.length ? [...new Set(denied.map((m) => m.replace(/\d+/g, 'N')))].join(' | ') : 'none'}`);

	const destroyStarted = performance.now();
	await virsh('destroy', name);
	t.comment(`virsh destroy: ${ms(destroyStarted)}`);
	t.match(await domainState(name), /^shut off/, 'the domain is shut off');
	t.ok((await within(5000, () => !alive(pvrunPid) && !alive(qemuPid))) >= 0, 'neither pvrun nor QEMU is left');
	t.same(pvrunLeftovers(pvrunPid), [], 'no shared-memory file or run directory of that pvrun left');
	t.ok(
		readEventLog(d.eventLog).some((e) => e.event === 'exit'),
		'pvrun logged its exit (it cleaned up, it was not killed)',
	);

	await virsh('undefine', name);
	t.notOk((await virsh('list', '--all', '--name')).split('\n').includes(name), 'the domain is undefined');
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
	t.same(pvrunLeftovers(pvrunPid), [], 'no shared-memory file or run directory left');
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

/** pvrun's files (pvrun-*) in /dev/shm and /tmp owned by `user`. */
function pvrunFilesOf(user: string): string[] {
	const {uid} = userIds(user);
	return ['/dev/shm', '/tmp'].flatMap((dir) =>
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
