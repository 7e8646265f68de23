// klock in a guest of VCPUS vCPUs with THREADS threads, under plain QEMU or pvrun with the
// options given; prints the guest's TLB-shootdown and call-function interrupt lines before and
// after, and klock's result.
// usage: node klock.mjs VCPUS THREADS SECONDS [plain|pvrun ARGS...] [--hogs]   (after `make build`)
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';
import {startHostHogs} from '../../../dist/bench/matrix.js';
import {ownCpus} from '../../../dist/host/cpus.js';

const [vcpus, threads, secs, mode = 'plain', ...rest] = process.argv.slice(2);
const hogs = rest.includes('--hogs') ? startHostHogs(ownCpus().length) : undefined;
const pvArgs = rest.filter((a) => a !== '--hogs');
const image = await ensureImage({});
const irq = 'grep,-e,TLB,-e,CAL,/proc/interrupts';
const g = bootGuest({
	kernel: image.kernel,
	initrd: image.initrd,
	cpus: Number(vcpus),
	run: `sleep,2;${irq};pvwork,klock,-t,${threads},-s,${secs};${irq}`,
	...(mode === 'pvrun' ? {launcher: pvrunCommand(...pvArgs)} : {}),
});
try {
	await g.waitFor(readyLine, 120000);
	await g.waitFor(/command exited with status/, 300000);
	console.log(`# ${vcpus} vCPUs, ${threads} threads, ${[mode, ...rest].join(' ')}`);
	for (const l of g.lines) if (/TLB|CAL|pvwork-result/.test(l)) console.log(l);
} finally {
	await g.stop();
	hogs?.stop();
}
