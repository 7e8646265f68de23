// Boots scenario a's quick command line through pvrun (default --pv-cs act) N times, with an HMP
// monitor; on a boot that shows nothing for 40 s, dumps every vCPU's registers to /tmp/pvrun-hang-<i>.txt.
// Usage (after make build): node bench/experiments/2026-12-05-cs-governor/hang-catcher.mjs N [pvrun,options]
import fs from 'node:fs';
import net from 'node:net';
const {bootGuest, pvrunCommand, readyLine} = await import(new URL('../../../dist/guest/boot.js', import.meta.url).href);
const {workloadCommand, scenarios} = await import(new URL('../../../dist/bench/matrix.js', import.meta.url).href);
const {ensureImage} = await import(new URL('../../../dist/image/build.js', import.meta.url).href);
const image = await ensureImage({});
const n = Number(process.argv[2] ?? 20);
const args = (process.argv[3] ?? '--pv-cs,act').split(',').filter(Boolean);
const hmp = (sock, cmd) =>
	new Promise((resolve) => {
		let out = '';
		const c = net.connect(sock);
		c.on('data', (d) => (out += d));
		c.on('connect', () => setTimeout(() => c.write(`${cmd}\n`), 300));
		setTimeout(() => {
			c.destroy();
			resolve(out);
		}, 2000);
		c.on('error', (e) => resolve(String(e)));
	});
const ws = ['poll', 'pingpong', 'sleeper', 'locks', 'hintlat', 'uspin', 'klock'];
const run = ['pvhint,live,30000', ...ws.map((w) => workloadCommand(w, scenarios.a, 0.5, 'pvrun-act', true)).filter(Boolean)].join(';');
for (let i = 0; i < n; i++) {
	const sock = `/tmp/pvrun-hang-mon-${i}.sock`;
	const t0 = performance.now();
	const g = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 4, run, launcher: pvrunCommand(...args), qemuArgs: ['-monitor', `unix:${sock},server=on,wait=off`]});
	let r;
	try {
		await g.waitFor(readyLine, 40000);
		await g.waitFor(/command exited with status/, 60000);
		r = `ok ${((performance.now() - t0) / 1000).toFixed(1)}s`;
	} catch (e) {
		r = `FAIL ${String(e).split('\n')[0].slice(0, 90)}`;
		const regs = await hmp(sock, 'info registers -a');
		const cpus = await hmp(sock, 'info cpus');
		fs.writeFileSync(`/tmp/pvrun-hang-hang-${i}.txt`, `${cpus}\n${regs}\n${g.lines.join('\n')}\n${g.stderr()}`);
	}
	await g.stop();
	fs.rmSync(sock, {force: true});
	fs.appendFileSync('/tmp/pvrun-hang-hang.txt', `${i} ${r}\n`);
}
process.exit(0);
