// uspin with one lock in a 4-vCPU guest beside one busy host process per CPU (scenario d),
// under plain QEMU or pvrun with the options given. Prints one JSON line: the busy processes'
// CPU share, uspin's result, every process's CPU share (`procs`), per QEMU thread its run
// time, run-queue wait, sleeps, preemptions and migrations (`threads`), and, sampled every
// 5 ms, how many runnable vCPU threads and busy processes share a vCPU thread's CPU and a busy
// process's CPU (`queueVcpu`, `queueHog`).
// usage: node share.mjs LOCK WORK_US SECONDS [plain|pvrun ARGS...]   (after `make build`)
import {readdirSync, readFileSync} from 'node:fs';
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';
import {startHostHogs} from '../../../dist/bench/matrix.js';
import {ownCpus} from '../../../dist/host/cpus.js';

const pids = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p));
const read = (path) => {
	try {
		return readFileSync(path, 'utf8');
	} catch {
		return '';
	}
};
/** A /proc stat line's fields after the name (field 3 of proc(5) is index 0). */
const statFields = (st) => st.slice(st.lastIndexOf(')') + 2).split(' ');

/** Per thread of QEMU process `qpid`: name, run and wait ms, voluntary and other switches, migrations. */
function qemuThreads(qpid) {
	const out = new Map();
	for (const tid of readdirSync(`/proc/${qpid}/task`)) {
		const dir = `/proc/${qpid}/task/${tid}`;
		const [run, wait] = read(`${dir}/schedstat`).split(' ').map(Number);
		const status = read(`${dir}/status`);
		const count = (re) => Number(re.exec(status)?.[1] ?? 0);
		out.set(tid, {
			comm: read(`${dir}/comm`).trim(),
			run: run / 1e6,
			wait: wait / 1e6,
			vol: count(/\nvoluntary_ctxt_switches:\s+(\d+)/),
			invol: count(/nonvoluntary_ctxt_switches:\s+(\d+)/),
			mig: Number(/se\.nr_migrations\s+:\s+(\d+)/.exec(read(`${dir}/sched`))?.[1] ?? 0),
		});
	}
	return out;
}

/** CPU time (clock ticks) of every process, by its name. */
function cpuByComm() {
	const by = new Map();
	for (const pid of pids()) {
		const st = read(`/proc/${pid}/stat`);
		if (!st) continue;
		const f = statFields(st);
		const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
		by.set(comm, (by.get(comm) ?? 0) + Number(f[11]) + Number(f[12]));
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
	const qpid = pids().find((p) => read(`/proc/${p}/comm`).startsWith('qemu-system'));
	const hogPids = pids().filter((p) => {
		const st = read(`/proc/${p}/stat`);
		return st.includes('(sh)') && Number(statFields(st)[1]) === process.pid;
	});
	const t0 = performance.now();
	const c0 = hogs.cpuNs();
	const p0 = cpuByComm();
	const q0 = qemuThreads(qpid);
	// The vCPU threads: named "CPU n/TCG" under pvrun; under plain QEMU (no thread names) the
	// four busiest threads, the workload having run for a second.
	const tids = [...q0]
		.sort(([, a], [, b]) => b.run - a.run)
		.filter(([, x], i) => x.comm.startsWith('CPU ') || (x.comm.startsWith('qemu') && i < 4))
		.slice(0, 4)
		.map(([tid]) => tid);
	const watched = [...tids.map((t) => ({kind: 'vcpu', path: `/proc/${qpid}/task/${t}/stat`})), ...hogPids.map((p) => ({kind: 'hog', path: `/proc/${p}/stat`}))];
	const queue = {vcpu: [0, 0], hog: [0, 0]};
	const sampler = setInterval(() => {
		const now = watched
			.map((w) => {
				const st = read(w.path);
				if (!st) return undefined;
				const f = statFields(st);
				return {kind: w.kind, state: f[0], cpu: Number(f[36])};
			})
			.filter((x) => x && x.state === 'R');
		for (const x of now) {
			queue[x.kind][0] += now.filter((y) => y.cpu === x.cpu).length;
			queue[x.kind][1]++;
		}
	}, 5);
	await new Promise((r) => setTimeout(r, (Number(secs) - 2) * 1000));
	clearInterval(sampler);
	const wall = performance.now() - t0;
	const share = (100 * (hogs.cpuNs() - c0)) / (wall * 1e6 * cpus);
	const p1 = cpuByComm();
	const q1 = qemuThreads(qpid);
	const perSec = (d) => Math.round((d * 1000) / wall);
	const threads = [...q1]
		.filter(([tid]) => q0.has(tid))
		.map(([tid, b]) => {
			const a = q0.get(tid);
			return {
				comm: b.comm,
				runPct: Math.round((100 * (b.run - a.run)) / wall),
				waitPct: Math.round((100 * (b.wait - a.wait)) / wall),
				sleepsPerSec: perSec(b.vol - a.vol),
				preemptsPerSec: perSec(b.invol - a.invol),
				migrationsPerSec: perSec(b.mig - a.mig),
			};
		})
		.filter((x) => x.runPct + x.waitPct > 0);
	const ticks = (wall / 1000) * 100 * cpus;
	const procs = Object.fromEntries([...p1].map(([k, v]) => [k, Math.round((1000 * (v - (p0.get(k) ?? 0))) / ticks) / 10]).filter(([, v]) => v >= 1));
	await g.waitFor(/command exited with status/, 120000);
	const line = g.lines.find((l) => l.includes('pvwork-result')) ?? '';
	const run = JSON.parse(line.slice(line.indexOf('{'))).runs[0];
	const mean = ([sum, n]) => (n ? +(sum / n).toFixed(2) : null);
	console.log(
		JSON.stringify({
			mode: [mode, ...pvArgs].join(' '),
			lock,
			us: Number(us),
			hogShare: Math.round(share * 10) / 10,
			opsPerSec: run.opsPerSec,
			stalledMsPerSec: run.stalledMsPerSec,
			parks: run.parks,
			p99WaitUs: run.p99WaitUs,
			procs,
			threads,
			queueVcpu: mean(queue.vcpu),
			queueHog: mean(queue.hog),
		}),
	);
} finally {
	await g.stop();
	hogs.stop();
}
