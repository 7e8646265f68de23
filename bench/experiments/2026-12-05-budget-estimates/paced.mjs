// pvrun's helper's CPU while a guest pins a thread to vCPU 1 and lets go every 100 ms (the
// hint-latency benchmark's paced series), at the default guest budget; one VM per run.
//   node bench/experiments/2026-12-05-budget-estimates/paced.mjs [RUNS]
import fs from 'node:fs';

const {bootGuest, pvrunCommand} = await import(new URL('../../../dist/guest/boot.js', import.meta.url).href);
const {ensureImage} = await import(new URL('../../../dist/image/build.js', import.meta.url).href);

const image = await ensureImage();
const runs = Number(process.argv[2] ?? 3);
for (let run = 1; run <= runs; run++) {
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: 2,
		run: 'sleep,4;echo,go;pvhint,wait,1,-n,200,-w,0,-p,100000',
		launcher: pvrunCommand(),
	});
	try {
		await guest.waitFor('go', 60_000);
		await new Promise((r) => setTimeout(r, 3000));
		// pvrun execs QEMU; its helper (node) is QEMU's child.
		const kids = fs.readFileSync(`/proc/${guest.pid}/task/${guest.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
		const helper = kids.find((p) => fs.readFileSync(`/proc/${p}/comm`, 'utf8').includes('node')) ?? 0;
		const cpu = () => {
			const f = fs.readFileSync(`/proc/${helper}/stat`, 'utf8');
			const a = f.slice(f.lastIndexOf(')') + 2).split(' ');
			return (Number(a[11]) + Number(a[12])) / 100;
		};
		const c0 = cpu();
		const t0 = performance.now();
		await new Promise((r) => setTimeout(r, 10_000));
		console.log(`run ${run}: helper ${helper} used ${((100 * (cpu() - c0)) / ((performance.now() - t0) / 1000)).toFixed(1)} % of a CPU over 10 s`);
	} finally {
		await guest.stop();
	}
}
