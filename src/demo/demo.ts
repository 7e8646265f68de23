// `make demo` for now: boot the default guest under plain QEMU (TCG, 2 vCPUs)
// and show it reach readiness. The hint-channel demo replaces this.
import {bootGuest, readyLine} from '../guest/boot.js';
import {ensureImage} from '../image/build.js';
import {chooseAccel} from '../qemu/accel.js';
import {createProgress} from '../util/progress.js';

export async function runDemo(): Promise<void> {
	const progress = createProgress('pvrun demo');
	const image = await ensureImage({progress: createProgress('pvrun image')});
	progress.info(`accelerator: ${chooseAccel('auto').reason}`);
	const started = performance.now();
	const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: 'true'});
	try {
		await guest.waitFor(readyLine, 30_000);
		const seconds = ((performance.now() - started) / 1000).toFixed(2);
		for (const line of guest.lines.filter((l) => l.startsWith('pvrun-guest:'))) process.stdout.write(`  guest> ${line}\n`);
		progress.info(`guest ready in ${seconds} s (the hint channel is not built yet: this demo only boots the guest)`);
		await guest.waitFor('command exited', 30_000);
		const code = await guest.exited;
		progress.info(`guest powered off, QEMU exited with ${code}`);
	} finally {
		await guest.stop();
	}
}
