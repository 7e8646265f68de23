// Where pvrun's devices go on the user's command line: the rule on a table of
// command lines, then real QEMU started through pvrun on command lines whose
// devices take the low slots (libvirt's balloon at slot 2 among them: QEMU
// refused it when pvrun's key=value IVSHMEM device was created first and took
// slot 2), on i440fx and q35, in JSON and key=value syntax. QEMU runs paused
// (-S) and is asked through a QMP socket of the test's own where each device is.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {pvrunCommand} from '../../src/guest/boot.js';
import {channelArgs, checkNoClash, choosePlace, slotOf} from '../../src/vm/devices.js';
import {within} from '../helpers/pvrun-vm.js';
import {connectQmpLine} from '../helpers/qmp-line.js';
import {killIfRunning, leftovers} from '../helpers/host-view.js';

const rng = (slot: number) => ['-device', `virtio-rng-pci,addr=0x${slot.toString(16)}`];
const jsonRng = (slot: number, bus = 'pci.0') => ['-device', JSON.stringify({driver: 'virtio-rng-pci', bus, addr: `0x${slot.toString(16)}`})];
const range = (from: number, to: number) => Array.from({length: to - from + 1}, (_, i) => from + i);
/** libvirt 9's default balloon, as it writes it for an i440fx domain without video. */
const libvirtBalloon = ['-device', '{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.0","addr":"0x2"}'];

t.test('addresses as QEMU reads them', async (t) => {
	t.equal(slotOf('0x2'), 2);
	t.equal(slotOf('2'), 2);
	t.equal(slotOf('10'), 16, 'hex without 0x, as QEMU parses it');
	t.equal(slotOf('0x1f.3'), 31);
	t.equal(slotOf('0x1.0x2'), 1, "libvirt's spelling");
	t.equal(slotOf(16), 2, 'a JSON number is a devfn');
	t.equal(slotOf('0x20'), undefined, 'no slot 32');
	t.equal(slotOf('junk'), undefined);
});

t.test('the highest slot no argument names, on the root bus of the machine type', async (t) => {
	t.match(choosePlace([]), {bus: 'pci.0', slot: 31}, "qemu-system-x86_64's default machine is i440fx");
	t.match(choosePlace(['-machine', 'pc-i440fx-7.2,usb=off', ...libvirtBalloon]), {bus: 'pci.0', slot: 31});
	t.match(choosePlace(['-M', 'q35']), {bus: 'pcie.0', slot: 30}, "q35's ICH9 has slot 0x1f");
	t.match(choosePlace(['-machine', '{"type":"pc-q35-7.2"}', ...jsonRng(30, 'pcie.0')]), {bus: 'pcie.0', slot: 29});
	t.match(
		choosePlace([...rng(31), '-device', 'e1000,addr=1e.0', ...jsonRng(29), '-device', '{"driver":"e1000","bus":"pci.0","addr":"0x1c.0x1"}']),
		{slot: 27},
		'key=value, JSON, with and without 0x and function',
	);
	t.match(choosePlace(['-device', 'virtio-rng-pci,bus=pci.1,addr=0x1f']), {slot: 31}, 'a device behind a bridge takes no root slot');
	t.match(choosePlace(['-net', 'nic,model=e1000,addr=0x1f', '-drive', 'if=virtio,file=x,addr=0x1e']), {slot: 29}, 'legacy -net nic and -drive if=virtio');
	t.match(choosePlace(['-nodefaults', ...range(2, 30).flatMap(rng)]), {slot: 31}, 'every slot up to 30 taken');
	t.throws(() => choosePlace(['-nodefaults', ...range(2, 31).flatMap(rng)]), {
		message: /no free PCI slot on pci.0 .* free one slot, or run with --pv-off/,
		exitCode: 2,
	});
	t.match(choosePlace(range(4, 30).flatMap(rng)), {slot: 31}, "without -nodefaults the board's VGA and NIC take slots 2 and 3 first");
	t.throws(() => choosePlace(range(3, 30).flatMap(rng)), {message: /no free PCI slot/, exitCode: 2}, 'and would take 31 if only one low slot were free');
	const place = choosePlace(['-readconfig', 'vm.cfg']);
	t.equal(place.slot, undefined, "-readconfig: devices pvrun cannot see: QEMU picks ({why: '...'})");
	t.equal(choosePlace(['-M', 'microvm']).slot, undefined, 'an unknown board: QEMU picks');
	// Devices without an address take the lowest free slots first: pvrun's slot must stay above them.
	const crowded = ['-nodefaults', ...range(3, 28).flatMap(rng), '-device', 'virtio-rng-pci', '-device', 'virtio-rng-pci'];
	t.match(choosePlace(crowded), {slot: 31}, 'slots 2, 29-31 free, two unaddressed devices to come first: they take 2 and 29');
	t.throws(
		() => choosePlace([...crowded, '-device', 'virtio-rng-pci', '-device', 'virtio-rng-pci']),
		{message: /no free PCI slot/, exitCode: 2},
		'four: they would take every free slot',
	);
});

t.test("pvrun's names are its own: a command line using one is refused", async (t) => {
	t.doesNotThrow(() => checkNoClash(['-device', 'virtio-serial-pci,id=vser0', '-chardev', 'socket,id=agent,path=/x']));
	t.throws(() => checkNoClash(['-device', 'virtserialport,id=pvrun-port']), {
		message: /-device uses "pvrun-port", a name pvrun gives its own hint channel .* run with --pv-off/,
		exitCode: 2,
	});
	t.throws(() => checkNoClash(['-device', '{"driver":"virtserialport","name":"org.pvrun.agent.0"}']), {message: /"org.pvrun.agent.0"/, exitCode: 2});
	t.throws(() => checkNoClash(['-object', 'memory-backend-file,id=pvrun-shm,size=1M']), {message: /-object uses "pvrun-shm"/, exitCode: 2});
});

t.test('without a slot, no bus or address is named; the kick port only with its socket', async (t) => {
	const args = channelArgs({shmPath: '/dev/shm/x', shmSize: 4096, agentSocket: '/a'}, {why: 'test'});
	t.notOk(
		args.some((a) => a.includes('"addr"') || a.includes('"bus":"pci')),
		'QEMU picks',
	);
	t.notOk(
		args.some((a) => a.includes('kick')),
		'no kick port',
	);
});

const [node = 'node', ...cli] = pvrunCommand();

interface PciDevice {
	slot: number;
	function: number;
	qdev_id: string;
	id: {vendor: number; device: number};
}

/** Start pvrun (QEMU paused, a QMP socket of the test's) on `args`; the PCI devices of bus 0. */
async function pciDevicesUnder(t: Test, args: string[]): Promise<PciDevice[]> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-devices-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const qmp = path.join(dir, 'user.qmp');
	const run = execa(node, [...cli, '-display', 'none', '-S', '-accel', 'tcg', ...args, '-qmp', `unix:${qmp},server=on,wait=off`], {
		reject: false,
		timeout: 30_000,
		stdin: 'ignore',
	});
	const pid = run.pid ?? 0;
	t.teardown(() => killIfRunning(pid));
	await within(10_000, () => fs.existsSync(qmp) || run.exitCode !== null);
	if (!fs.existsSync(qmp)) {
		const r = await run;
		throw new Error(`QEMU did not start (${r.exitCode}): ${r.stderr}`);
	}
	const monitor = await connectQmpLine(qmp);
	const buses = (await monitor.execute('query-pci')) as Array<{bus: number; devices: PciDevice[]}>;
	await monitor.execute('quit');
	monitor.close();
	const r = await run;
	t.equal(r.exitCode, 0, 'QEMU started with every device and quit with status 0');
	await within(5000, () => leftovers(pid).length === 0);
	return buses.find((b) => b.bus === 0)?.devices ?? [];
}

const ivshmem = (d: PciDevice) => d.id.vendor === 0x1af4 && d.id.device === 0x1110;

const realCases: Array<{name: string; args: string[]; slot: number; user: number[]}> = [
	{name: "libvirt's default balloon at slot 2 (JSON), i440fx", args: ['-nodefaults', '-machine', 'pc-i440fx-7.2', ...libvirtBalloon], slot: 31, user: [2]},
	{name: 'key=value devices at slots 4-9, i440fx with its defaults (VGA, NIC at 2 and 3)', args: range(4, 9).flatMap(rng), slot: 31, user: range(2, 9)},
	{name: 'JSON devices at every slot 2-30, i440fx', args: ['-nodefaults', ...range(2, 30).flatMap((s) => jsonRng(s))], slot: 31, user: range(2, 30)},
	{
		name: 'q35, -nodefaults, devices at 0x1e and 0x2 in both syntaxes',
		args: ['-nodefaults', '-M', 'q35', ...jsonRng(30, 'pcie.0'), '-device', 'virtio-rng-pci,bus=pcie.0,addr=0x2'],
		slot: 29,
		user: [30, 2],
	},
	{
		name: 'a key=value device without an address and a JSON one at 0x3',
		args: ['-nodefaults', '-device', 'virtio-rng-pci,id=r0', ...jsonRng(3)],
		slot: 31,
		user: [3],
	},
];

for (const c of realCases)
	t.test(`real QEMU: ${c.name}`, async (t) => {
		const devices = await pciDevicesUnder(t, c.args);
		const ours = devices.filter((d) => d.qdev_id.startsWith('pvrun-'));
		t.same(
			ours.map((d) => [d.qdev_id, d.slot, d.function]),
			[
				['pvrun-ivshmem', c.slot, 0],
				['pvrun-vser', c.slot, 1],
			],
			`pvrun's IVSHMEM and virtio-serial share slot ${c.slot}`,
		);
		for (const slot of c.user)
			t.ok(
				devices.some((d) => d.slot === slot && !d.qdev_id.startsWith('pvrun-')),
				`the user's device at slot ${slot} is there`,
			);
		t.equal(devices.filter(ivshmem).length, 1, 'one IVSHMEM device');
	});
