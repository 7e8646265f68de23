// Boot the default image once (plain QEMU, or pvrun with the options given) and print
// the pvwork result lines: the tool of the scripts beside it.
// usage: node run.mjs VCPUS 'cmd1;cmd2' [plain|pvrun ARGS...] [--neighbour]
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';
import {startNeighbourVm} from '../../../dist/bench/matrix.js';
const [vcpus, run, mode = 'plain', ...rest] = process.argv.slice(2);
const neighbour = rest.includes('--neighbour');
const pvArgs = rest.filter((a) => a !== '--neighbour');
const image = await ensureImage({});
const stopN = neighbour ? await startNeighbourVm(image) : undefined;
const g = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: Number(vcpus), run: `sleep,3;${run}`, ...(mode === 'pvrun' ? {launcher: pvrunCommand(...pvArgs)} : {})});
try {
	await g.waitFor(readyLine, 60000);
	await g.waitFor(/command exited with status/, 600000);
	for (const l of g.lines) if (/pvwork|pvcs|status/.test(l)) console.log(l);
} finally {
	await g.stop();
	if (stopN) await stopN();
}
