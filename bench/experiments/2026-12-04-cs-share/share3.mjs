// The busy host processes' CPU share while uspin runs one lock in a 4-vCPU guest beside
// them (scenario d), under plain QEMU or pvrun with the options given.
// usage: node share.mjs LOCK WORK_US SECONDS [plain|pvrun ARGS...]   (after `make build`)
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';
import {startHostHogs} from '../../../dist/bench/matrix.js';
import {ownCpus} from '../../../dist/host/cpus.js';
import {readdirSync, readFileSync} from 'node:fs';

/** Per thread of QEMU (the process named qemu-system-x86): name, CPU ms, wait ms, voluntary switches. */
function qemuThreads() {
	const out = new Map();
	for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
		try {
			if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('qemu-system')) continue;
			for (const tid of readdirSync(`/proc/${pid}/task`)) {
				const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
				const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
				const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
				const vol = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
				const invol = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]);
				const sched = readFileSync(`/proc/${pid}/task/${tid}/sched`, 'utf8');
				const mig = Number(/se\.nr_migrations\s+:\s+(\d+)/.exec(sched)?.[1] ?? 0);
				out.set(tid, {comm, run: run / 1e6, wait: wait / 1e6, vol, invol, mig});
			}
		} catch {}
	}
	return out;
}

/** The busy processes: this process's children named sh. */
function hogPids() {
	return readdirSync('/proc').filter((p) => {
		try {
			const st = readFileSync(`/proc/${p}/stat`, 'utf8');
			return /^\d+$/.test(p) && st.includes('(sh)') && Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
		} catch {
			return false;
		}
	});
}

/** CPU time (clock ticks) of every process, by its name. */
function cpuByComm() {
	const by = new Map();
	for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
		try {
			const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
			const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
			const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
			by.set(comm, (by.get(comm) ?? 0) + Number(f[11]) + Number(f[12]));
		} catch {}
	}
	return by;
}

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
	const p0 = cpuByComm();
	// Every 5 ms: which CPU each runnable vCPU thread and busy process is on; each thread's
	// mean count of runnable threads (its own included) on its CPU.
	// The vCPU threads: named "CPU n/TCG" under pvrun; under plain QEMU (no thread names) the
	// four busiest threads, the workload having run for a second.
	const tids = [...qemuThreads()]
		.sort(([, a], [, b]) => b.run - a.run)
		.filter(([, x], i) => x.comm.startsWith('CPU ') || (x.comm.startsWith('qemu') && i < 4))
		.slice(0, 4)
		.map(([tid]) => tid);
	const qpid = readdirSync('/proc').find((p) => /^\d+$/.test(p) && (() => { try { return readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('qemu-system'); } catch { return false; } })());
	const watched = [...tids.map((t) => ({kind: 'vcpu', path: `/proc/${qpid}/task/${t}/stat`})), ...hogPids().map((p) => ({kind: 'hog', path: `/proc/${p}/stat`}))];
	const queue = {vcpu: [0, 0], hog: [0, 0]};
	const sampler = setInterval(() => {
		const now = watched.map((w) => {
			try {
				const st = readFileSync(w.path, 'utf8');
				const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
				return {kind: w.kind, state: f[0], cpu: Number(f[36])};
			} catch { return undefined; }
		}).filter((x) => x && x.state === 'R');
		for (const x of now) {
			queue[x.kind][0] += now.filter((y) => y.cpu === x.cpu).length;
			queue[x.kind][1]++;
		}
	}, 5);
	const q0 = qemuThreads();
	await new Promise((r) => setTimeout(r, (Number(secs) - 2) * 1000));
	const share = (100 * (hogs.cpuNs() - c0)) / ((performance.now() - t0) * 1e6 * cpus);
	clearInterval(sampler);
	const p1 = cpuByComm();
	const q1 = qemuThreads();
	const wall = performance.now() - t0;
	const threads = [...q1]
		.filter(([tid]) => q0.has(tid))
		.map(([tid, b]) => {
			const a = q0.get(tid);
			return {comm: b.comm, runPct: Math.round((100 * (b.run - a.run)) / wall), waitPct: Math.round((100 * (b.wait - a.wait)) / wall), sleepsPerSec: Math.round(((b.vol - a.vol) * 1000) / wall), preemptsPerSec: Math.round(((b.invol - a.invol) * 1000) / wall), migrationsPerSec: Math.round(((b.mig - a.mig) * 1000) / wall)};
		})
		.filter((x) => x.runPct + x.waitPct > 0);
	const ticks = ((performance.now() - t0) / 1000) * 100 * cpus;
	const procs = Object.fromEntries(
		[...p1].map(([k, v]) => [k, Math.round((1000 * (v - (p0.get(k) ?? 0))) / ticks) / 10]).filter(([, v]) => v >= 1),
	);
	await g.waitFor(/command exited with status/, 120000);
	const line = g.lines.find((l) => l.includes('pvwork-result')) ?? '';
	const run = JSON.parse(line.slice(line.indexOf('{'))).runs[0];
	console.log(JSON.stringify({mode: [mode, ...pvArgs].join(' '), lock, us: Number(us), hogShare: Math.round(share * 10) / 10, opsPerSec: run.opsPerSec, stalledMsPerSec: run.stalledMsPerSec, parks: run.parks, p99WaitUs: run.p99WaitUs, procs, queueVcpu: +(queue.vcpu[0] / queue.vcpu[1]).toFixed(2), queueHog: +(queue.hog[0] / queue.hog[1]).toFixed(2)}));
	for (const x of threads) console.log('  ', JSON.stringify(x));
} finally {
	await g.stop();
	hogs.stop();
}
