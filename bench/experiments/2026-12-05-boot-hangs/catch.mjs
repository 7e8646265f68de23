// Boot a guest through pvrun N times (args: tag N cpus pvargs run); on no ready line in 90 s,
// dump registers (3 samples) and info cpus and the event log to /tmp/hang/<tag>-<i>.txt.
import fs from 'node:fs';
import net from 'node:net';
const root = new URL('../../../dist/', import.meta.url).href;
const {bootGuest, pvrunCommand, readyLine} = await import(root + 'guest/boot.js');
const {ensureImage} = await import(root + 'image/build.js');
const image = await ensureImage({});
const [tag = 'x', nS = '10', cpusS = '2', pv = '', run = 'sleep,600', plain = ''] = process.argv.slice(2);
const hmp = (sock, cmd) =>
	new Promise((resolve) => {
		let out = '';
		const c = net.connect(sock);
		c.on('data', (d) => (out += d));
		c.on('connect', () => setTimeout(() => c.write(`${cmd}\n`), 300));
		setTimeout(() => { c.destroy(); resolve(out); }, 2000);
		c.on('error', (e) => resolve(String(e)));
	});
for (let i = 0; i < Number(nS); i++) {
	const sock = `/tmp/hang/mon-${tag}-${i}.sock`;
	const log = `/tmp/hang/ev-${tag}-${i}.jsonl`;
	fs.rmSync(log, {force: true});
	const t0 = performance.now();
	const append = `console=ttyS0 quiet panic=-1 tsc=reliable nokaslr pvrun.run=${run}`;
	const launcher = plain ? undefined : pvrunCommand('--pv-log', log, ...pv.split(',').filter(Boolean));
	const g = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: Number(cpusS), run, ...(launcher ? {launcher} : {}), qemuArgs: [...(tag.startsWith('K') ? [] : ['-append', append]), '-monitor', `unix:${sock},server=on,wait=off`]});
	let r;
	try {
		await g.waitFor(readyLine, 90000);
		r = `ok ${((performance.now() - t0) / 1000).toFixed(1)}s`;
	} catch (e) {
		r = `FAIL ${String(e).split('\n')[0].slice(0, 90)}`;
		let out = '';
		for (let k = 0; k < 3; k++) out += `--- sample ${k}\n${await hmp(sock, 'info cpus')}\n${await hmp(sock, 'info registers -a')}\n`;
		let ev = '';
		try { ev = fs.readFileSync(log, 'utf8'); } catch {}
		fs.writeFileSync(`/tmp/hang/hang-${tag}-${i}.txt`, `${out}\n--- console\n${g.lines.join('\n')}\n--- stderr\n${g.stderr()}\n--- events\n${ev}`);
	}
	await g.stop();
	fs.rmSync(sock, {force: true});
	fs.rmSync(log, {force: true});
	fs.appendFileSync('/tmp/hang/results.txt', `${new Date().toISOString()} ${tag} ${i} ${r}\n`);
}
process.exit(0);
