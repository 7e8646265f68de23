import fs from 'node:fs';
import {execFileSync} from 'node:child_process';
const here = '/work/main';
const {bootGuest} = await import(`${here}/dist/guest/boot.js`);
const {ensureImage} = await import(`${here}/dist/image/build.js`);
const slice = Number(process.argv[2] ?? 10000);
const plain = process.argv[3] === 'plain';
const image = await ensureImage();
const n = 8;
const cmd = (s) => `pvwork,poll,-c,0,-s,${s},-b,3`;
const run = ['sleep,3', cmd(1), ...Array.from({length: n}, () => cmd(5))].join(';');
const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 4, run, ...(plain ? {qemuArgs: ['-name', 'p,debug-threads=on']} : {launcher: [process.execPath, `${here}/dist/cli/main.js`]})});
const qemuOf = (pid) => {
	for (const t of fs.readdirSync(`/proc/${pid}/task`))
		for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean))
			if (fs.readFileSync(`/proc/${c}/comm`, 'utf8').startsWith('qemu')) return Number(c);
	return pid;
};
const vcpus = (q) => fs.readdirSync(`/proc/${q}/task`).filter((t) => /^CPU [1-3]\//.test(fs.readFileSync(`/proc/${q}/task/${t}/comm`, 'utf8')));
try {
	const order = [0, 1, 1, 0, 0, 1, 1, 0, 0];
	const out = {0: [], 1: []};
	for (let i = 0; i <= n; i++) {
		const t0 = Date.now();
		let lines = [];
		while ((lines = guest.lines.filter((l) => l.includes('pvwork-result'))).length <= i && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 50));
		if (i > 0) {
			const r = JSON.parse(lines[i].slice(lines[i].indexOf('{')));
			out[order[i - 1]].push(r.iterPerSec + r.burnerIterPerSec);
			console.log(order[i - 1] ? `slice ${slice}` : 'default', Math.round(r.iterPerSec / 1e3), Math.round(r.burnerIterPerSec / 1e3), Math.round((r.iterPerSec + r.burnerIterPerSec) / 1e3), 'stall', Math.round(r.maxStallUs));
		}
		if (i < n) execFileSync('/tmp/exp/setslice', [String(order[i] ? slice : 0), ...vcpus(qemuOf(guest.pid))]);
	}
	const med = (x) => x.sort((a, b) => a - b)[x.length >> 1];
	console.log('median total: default', Math.round(med(out[0]) / 1e3), `slice ${slice}`, Math.round(med(out[1]) / 1e3));
} finally {
	await guest.stop();
}
