// End to end: the default image boots under plain QEMU (TCG, 2 vCPUs) and
// prints its readiness line within 15 s; its hint-channel modules are loaded;
// a deadline it misses says where its vCPUs are.
import t from 'tap';
import {bootGuest, readyLine} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';

t.test('default guest reaches readiness', async (t) => {
	const image = await ensureImage();
	const started = performance.now();
	const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: 'lsmod;sleep,4'});
	t.teardown(() => guest.stop());
	await guest.waitFor(readyLine, 15_000);
	const seconds = (performance.now() - started) / 1000;
	t.comment(`boot to readiness under ${process.env['CI'] ? 'CI, ' : ''}TCG with 2 vCPUs: ${seconds.toFixed(2)} s`);
	t.ok(seconds <= 15, 'ready within 15 s');
	t.ok(guest.lines.includes(readyLine), 'the readiness line is exact');
	t.match(guest.lines.find((l) => l.startsWith('pvrun-guest: kernel')) ?? '', /pvagent \d+\.\d+\.\d+ \(libbpf \d+\.\d+\), 2 vCPUs$/);
	t.ok(
		guest.lines.some((l) => /^\[\s*\d+\.\d+\] Linux version 6\./.test(l)),
		"the kernel's boot messages are on the console (a hung boot shows how far it got)",
	);
	// What a missed deadline says of the vCPUs: QEMU's monitor, behind the console, answers.
	await t.rejects(
		guest.waitFor('a line the guest never prints', 200),
		/\nvCPU registers: vCPU 0 (halted )?at ffffffff8[0-9a-f]{7}, vCPU 1 (halted )?at ffffffff8[0-9a-f]{7}$/,
		"a missed deadline reports where each vCPU is, as System.map's addresses (nokaslr)",
	);
	await guest.waitFor('pvrun-guest: command exited with status 0', 15_000);
	for (const mod of ['virtio_console', 'virtio_pci', 'virtio_ring'])
		t.ok(
			guest.lines.some((l) => l.startsWith(`${mod} `)),
			`${mod} loaded`,
		);
	t.equal(await guest.exited, 0, 'the guest powers off and QEMU exits 0');
});
