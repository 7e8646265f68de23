// The busy host processes' CPU share while uspin runs one lock in a 4-vCPU guest beside
// them (scenario d), under plain QEMU or pvrun with the options given.
// usage: node share.mjs LOCK WORK_US SECONDS [plain|pvrun ARGS...]   (after `make build`)
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';
import {startHostHogs} from '../../../dist/bench/matrix.js';
import {ownCpus} from '../../../dist/host/cpus.js';

const [lock, us, secs, mode = 'plain', ...pvArgs] = process.argv.slice(2);
const image = await ensureImage({});
const cpus = ownCpus().length;
const hogs = startHostHogs(cpus);
const g = bootGuest({
	kernel: image.kernel,
	initrd: image.initrd,
	cpus: 4,
	run: `sleep,2;pvwork,uspin,-t,4,-l,${lock},-w,${us},-s,${secs}`,
	...(mode === 'pvrun' ? {launcher: pvrunCommand(...pvArgs)} : {}),
});
try {
	await g.waitFor(readyLine, 120000);
	// The workload starts 2 s after ready: measure from 3 s to its end (its last second left out).
	await new Promise((r) => setTimeout(r, 3000));
	const t0 = performance.now();
	const c0 = hogs.cpuNs();
	await new Promise((r) => setTimeout(r, (Number(secs) - 2) * 1000));
	const share = (100 * (hogs.cpuNs() - c0)) / ((performance.now() - t0) * 1e6 * cpus);
	await g.waitFor(/command exited with status/, 120000);
	const line = g.lines.find((l) => l.includes('pvwork-result')) ?? '';
	const run = JSON.parse(line.slice(line.indexOf('{'))).runs[0];
	console.log(JSON.stringify({mode: [mode, ...pvArgs].join(' '), lock, us: Number(us), hogShare: Math.round(share * 10) / 10, opsPerSec: run.opsPerSec, stalledMsPerSec: run.stalledMsPerSec, parks: run.parks, p99WaitUs: run.p99WaitUs}));
} finally {
	await g.stop();
	hogs.stop();
}
