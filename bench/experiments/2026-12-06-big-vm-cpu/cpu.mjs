// node cpu.mjs N [PINS] [PLACEMENT]: boot a default guest of N vCPUs through pvrun and measure the CPU
// time of pvrun's helper process, thread by thread, over 10 s of an idle guest and then over PINS
// pins of one thread to vCPU 1 (pvhint wait); print one JSON line (ms of CPU per second of wall time).
import {spawn} from 'node:child_process';
import fs from 'node:fs';
const root = new URL('../../../dist/', import.meta.url).href;
const {bootGuest, pvrunCommand} = await import(root + 'guest/boot.js');
const {ensureImage} = await import(root + 'image/build.js');
const image = await ensureImage();
const n = Number(process.argv[2] ?? 2);
const pins = Number(process.argv[3] ?? 200);
const placement = process.argv[4] ?? 'auto';
const log = `/tmp/s36-cpu-${n}.jsonl`;
fs.rmSync(log, {force: true});
const tick = 100; // USER_HZ: /proc stat times are in 1/100 s
const guest = bootGuest({
	kernel: image.kernel,
	initrd: image.initrd,
	cpus: n,
	memoryMiB: 1024,
	// With PERF, pvrun's node runs with --perf-basic-prof (a map of JavaScript names for perf).
	launcher: process.env.PERF
		? ['env', 'NODE_OPTIONS=--perf-basic-prof', ...pvrunCommand('--pv-log', log, '--pv-placement', placement).slice(3)]
		: pvrunCommand('--pv-log', log, '--pv-placement', placement),
	run: `echo,pvcpu:,idle;sleep,10;echo,pvcpu:,loop;pvhint,wait,1,-n,${pins},-t,10000`,
});
/** The helper: a node child of QEMU's pid (pvrun became QEMU). */
function helperPid() {
	for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
		try {
			const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
			const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
			if (Number(f[1]) === guest.pid && st.includes('(node')) return Number(p);
		} catch {}
	}
	return undefined;
}
/** Per thread (comm, tid): CPU ms. */
function threads(pid) {
	const out = {};
	for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
		try {
			const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
			const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
			const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
			out[`${comm}/${tid}`] = ((Number(f[11]) + Number(f[12])) * 1000) / tick;
		} catch {}
	}
	return out;
}
const diff = (a, b, s) => {
	const r = {};
	let total = 0;
	for (const [k, v] of Object.entries(b)) {
		const d = (v - (a[k] ?? 0)) / s;
		total += d;
		if (d > 0) r[k.replace(/\/\d+$/, '')] = Math.round(((r[k.replace(/\/\d+$/, '')] ?? 0) + d) * 10) / 10;
	}
	return {total: Math.round(total * 10) / 10, threads: r};
};
await guest.waitFor(/^pvcpu: idle/, 600000);
const pid = helperPid();
const a = threads(pid), ta = performance.now();
await guest.waitFor(/^pvcpu: loop/, 60000);
const b = threads(pid), tb = performance.now();
// PERF=FILE: perf record the helper over the loop (run with NODE_OPTIONS=--perf-basic-prof for JavaScript names).
const perf = process.env.PERF ? spawn('perf', ['record', '-F', '499', '-g', '-p', String(pid), '-o', process.env.PERF], {stdio: 'ignore'}) : undefined;
const line = await guest.waitFor(/^pvhint: vcpu=/, 600000);
if (perf) {
	perf.kill('SIGINT');
	await new Promise((r) => perf.once('exit', r));
}
const c = threads(pid), tc = performance.now();
await guest.stop();
const ev = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const off = ev.find((e) => e.event === 'fast-path' && e.state === 'off');
console.log(
	JSON.stringify({
		vcpus: n,
		placement,
		idleMsPerS: diff(a, b, (tb - ta) / 1000),
		loopMsPerS: diff(b, c, (tc - tb) / 1000),
		loopS: Math.round((tc - tb) / 100) / 10,
		slow: off?.slowDecisions,
		noTable: off?.noTable,
		holds: ev.filter((e) => e.event === 'cpu-hold').length,
		stalls: ev.filter((e) => e.event === 'stall').length,
		guest: line,
	}),
);
