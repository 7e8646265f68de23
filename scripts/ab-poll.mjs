#!/usr/bin/env node
// Alternating A/B runs of the benchmark matrix's scenario a poll (one guest,
// 4 vCPUs on this machine's CPUs, `pvwork poll -c 0 -b 3`: a poller pinned to
// vCPU 0 beside 3 busy unpinned threads) between pvrun builds, for policy
// changes whose effect the full matrix's 3 repetitions cannot separate from
// the machine's drift; `--workload sleeper` runs scenario a's sleeper instead
// (`pvwork sleeper -c 0 -p 1000 -b 3`), whose rare stalls need many VMs to
// count; `--workload pingpong` runs the matrix's ping-pong (`pvwork pingpong
// -a 0 -c 1`, busy threads on the other vCPUs); `--workload locks` the
// matrix's locks (`pvwork locks -t VCPUS`); `--after poll` runs the poll
// for 10 s first in the same boot, as the matrix runs its workloads one after
// the other (the warm-up is then the poll's, and the measured run, with the
// moves of `plain-one-cpu` and `static` below, starts after it). `--scenario
// b` or `c` runs the matrix's scenario b or c instead: a 2-vCPU guest (`-b 1`) beside a second VM under plain QEMU running
// `pvwork locks -t 2`, or beside one busy shell per host CPU, as
// src/bench/matrix.ts sets them up (its own functions). Each variant is a
// pvrun build: a directory like this checkout whose dist/ holds the variant.
// Besides pvwork's result, it reads each vCPU thread's CPU time from /proc over
// 6 s of the 10 s run, so that work per CPU-second can be told from CPU given. The variant `plain` (no =DIR) is plain
// QEMU, with debug-threads=on so that its vCPU threads are named too;
// `plain-one-cpu` is plain QEMU with all its threads moved to host CPU 0 once
// the warm-up is done, as the measured run starts (taskset), so that no two of
// its vCPUs ever run at once; `static` is plain QEMU with vCPU i's thread on
// host CPU i mod N from then on, the matrix's static pinning.
// `--perf` samples QEMU with `perf record -e cpu-clock` over those 6 s and
// prints, per kind of vCPU thread, the share of its samples in translated guest
// code (perf's [JIT] map) and in cpu_get_ticks: QEMU's TSC read behind one
// spinlock for all vCPUs (docs/benchmarks.md, "TCG's clock lock").
//
//   node scripts/ab-poll.mjs [--pairs N] [--workload poll|sleeper|pingpong|locks] [--after WORKLOAD] [--scenario a|b|c] [--perf] NAME=DIR|plain|plain-one-cpu|static ...
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import timers from 'node:timers';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import {performance} from 'node:perf_hooks';

const {values, positionals} = parseArgs({
	allowPositionals: true,
	options: {
		pairs: {type: 'string', default: '4'},
		workload: {type: 'string', default: 'poll'},
		scenario: {type: 'string', default: 'a'},
		perf: {type: 'boolean', default: false},
		after: {type: 'string'},
	},
});
const pairs = Number(values.pairs);
const scenario = {a: {vcpus: 4}, b: {vcpus: 2, neighbourVm: true}, c: {vcpus: 2, hostHogs: true}}[values.scenario];
const busy = `-b,${(scenario?.vcpus ?? 1) - 1}`;
const workloads = {
	poll: `pvwork,poll,-c,0,-s,SEC,${busy}`,
	sleeper: `pvwork,sleeper,-c,0,-p,1000,-s,SEC,${busy}`,
	pingpong: `pvwork,pingpong,-a,0,-c,1,-s,SEC,-b,${(scenario?.vcpus ?? 2) - 2}`,
	locks: `pvwork,locks,-t,${scenario?.vcpus ?? 2},-s,SEC`,
};
const command = workloads[values.workload];
const before = values.after === undefined ? undefined : workloads[values.after];
if (!Number.isInteger(pairs) || pairs < 1 || positionals.length === 0 || !command || !scenario || (values.after !== undefined && !before)) {
	process.stderr.write(
		'usage: node scripts/ab-poll.mjs [--pairs N] [--workload poll|sleeper|pingpong|locks] [--after WORKLOAD] [--scenario a|b|c] [--perf] NAME=DIR|plain|plain-one-cpu|static ...\n',
	);
	process.exit(2);
}
if (values.perf && spawnSync('perf', ['--version']).status !== 0) {
	process.stderr.write('ab-poll: --perf needs perf (Debian: apt-get install linux-perf)\n');
	process.exit(2);
}
const here = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const {bootGuest} = await import(path.join(here, 'dist/guest/boot.js'));
const {ensureImage} = await import(path.join(here, 'dist/image/build.js'));
const {ownCpus} = await import(path.join(here, 'dist/host/cpus.js'));
const {startNeighbourVm, startHostHogs} = await import(path.join(here, 'dist/bench/matrix.js'));
const variants = positionals.map((spec) => {
	if (spec === 'plain' || spec === 'plain-one-cpu' || spec === 'static') return {name: spec, main: undefined};
	const [name, dir] = spec.split('=');
	const main = path.resolve(dir ?? '', 'dist/cli/main.js');
	if (!name || !fs.existsSync(main)) {
		process.stderr.write(`ab-poll: ${spec}: no pvrun build at ${main}\n`);
		process.exit(2);
	}
	return {name, main};
});
const say = (line) => process.stdout.write(`${line}\n`);
const sleep = (ms) => new Promise((r) => timers.setTimeout(r, ms));
/** QEMU, the launcher's child. */
const qemuOf = (pid) => {
	for (const t of fs.readdirSync(`/proc/${pid}/task`))
		for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(' ').filter(Boolean))
			if (fs.readFileSync(`/proc/${c}/comm`, 'utf8').startsWith('qemu')) return Number(c);
	return pid;
};
/** CPU ticks (utime + stime) per thread name: "CPU n/TCG", everything else as "other". */
const ticks = (qemu) => {
	const out = {};
	for (const t of fs.readdirSync(`/proc/${qemu}/task`)) {
		try {
			const comm = fs.readFileSync(`/proc/${qemu}/task/${t}/comm`, 'utf8').trim();
			const stat = fs.readFileSync(`/proc/${qemu}/task/${t}/stat`, 'utf8');
			const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
			const key = comm.startsWith('CPU ') ? comm : 'other';
			out[key] = (out[key] ?? 0) + Number(f[11]) + Number(f[12]);
		} catch {
			// a worker thread ended meanwhile
		}
	}
	return out;
};
/**
 * Shares of the perf samples of vCPU 0's thread (the worker's) and of the
 * others: translated code, QEMU's TSC lock, and the lock samples that belong to
 * a spin of 4 ms or more (8 or more of a thread's samples in a row in
 * cpu_get_ticks, 0.5 ms apart). Contention alone makes such runs rare (at a 40 %
 * share, under 1 % of the lock samples); a lock holder preempted on its CPU
 * makes the others spin until it runs again, a scheduler slice or more. The
 * longest spin is in samples, 0.5 ms each.
 */
const profile = (data) => {
	const out = spawnSync('perf', ['script', '-i', data, '-F', 'comm,tid,time,ip,sym,dso'], {encoding: 'utf8', maxBuffer: 256 * 1024 * 1024}).stdout ?? '';
	fs.rmSync(data, {force: true});
	const count = {worker: {all: 0, jit: 0, lock: 0, spin: 0, longest: 0}, others: {all: 0, jit: 0, lock: 0, spin: 0, longest: 0}};
	/** Per thread: its kind, and the current run of lock samples (length, time of the last). */
	const runs = new Map();
	const endRun = (r) => {
		if (r.length >= 8) r.c.spin += r.length;
		r.c.longest = Math.max(r.c.longest, r.length);
		r.length = 0;
	};
	for (const line of out.split('\n')) {
		const m = /^\s*CPU (\d+)\/TCG\s+(\d+)\s+([\d.]+):\s+[0-9a-f]+\s+(\S+).*\((.*)\)\s*$/.exec(line);
		if (!m) continue;
		const c = m[1] === '0' ? count.worker : count.others;
		const time = Number(m[3]);
		const r = runs.get(m[2]) ?? {c, length: 0, last: 0};
		runs.set(m[2], r);
		c.all++;
		if (m[5].includes('/perf-')) c.jit++;
		const lock = !m[5].includes('/perf-') && m[4].startsWith('cpu_get_ticks');
		if (!lock || time - r.last > 0.0015) endRun(r);
		if (lock) {
			c.lock++;
			r.length++;
		}
		r.last = time;
	}
	for (const r of runs.values()) endRun(r);
	const pct = (n, d) => `${d ? Math.round((100 * n) / d) : 0} %`;
	return Object.entries(count)
		.map(
			([k, c]) =>
				`${k} in guest code ${pct(c.jit, c.all)}, in cpu_get_ticks ${pct(c.lock, c.all)} (in spins of 4 ms or more ${pct(c.spin, c.all)}, the longest ${(c.longest / 2).toFixed(1)} ms)`,
		)
		.join('; ');
};
const fmt = (r) =>
	r.workload === 'sleeper'
		? `sleeper lateness p50 ${(r.p50Us / 1e3).toFixed(2)} ms, p99 ${(r.p99Us / 1e3).toFixed(2)} ms, max ${(r.maxUs / 1e3).toFixed(1)} ms, neighbours ${(r.burnerIterPerSec / 1e3).toFixed(0)}k`
		: r.workload === 'pingpong'
			? `pingpong ${(r.roundTripsPerSec / 1e3).toFixed(0)}k round trips/s, p99 ${r.p99Us.toFixed(1)} µs`
			: r.workload === 'locks'
				? `locks ${(r.opsPerSec / 1e3).toFixed(0)}k ops/s`
				: `poll ${(r.iterPerSec / 1e3).toFixed(0)}k it/s, longest stall ${(r.maxStallUs / 1e3).toFixed(2)} ms, neighbours ${(r.burnerIterPerSec / 1e3).toFixed(0)}k`;
/** The scenario's load beside the measured VM, started as the matrix starts it; resolves to its stop function. */
const startLoad = async () => {
	if (scenario.neighbourVm) return startNeighbourVm(image);
	if (scenario.hostHogs) return startHostHogs(ownCpus().length).stop;
	return () => {};
};
const image = await ensureImage();
const all = new Map(variants.map((v) => [v.name, []]));
say(
	`scenario ${values.scenario} ${values.workload}${before ? ` after ${values.after}` : ''}, ${pairs} alternating pairs, 10 s each after a 1 s warm-up; CPU: CPU-seconds per second of each vCPU thread over 6 s of the run`,
);
for (let pair = 0; pair < pairs; pair++) {
	for (const v of pair % 2 ? [...variants].reverse() : variants) {
		const stopLoad = await startLoad();
		const guest = bootGuest({
			kernel: image.kernel,
			initrd: image.initrd,
			cpus: scenario.vcpus,
			run: `sleep,3;${(before ?? command).replace('SEC', '1')};${before ? `${before.replace('SEC', '10')};` : ''}${command.replace('SEC', '10')}`,
			...(v.main ? {launcher: [process.execPath, v.main]} : {qemuArgs: ['-name', 'plain,debug-threads=on']}),
		});
		try {
			await guest.waitFor('pvwork-result', 120_000); // the warm-up's: the measured run starts now
			for (const deadline = performance.now() + 60_000; before && guest.lines.filter((l) => l.includes('pvwork-result')).length < 2; await sleep(20))
				if (performance.now() > deadline) throw new Error(`no result from ${values.after} within 60 s`);
			const qemu = qemuOf(guest.pid);
			const cpus = ownCpus();
			for (const t of fs.readdirSync(`/proc/${qemu}/task`)) {
				const vcpu = /^CPU (\d+)\//.exec(fs.readFileSync(`/proc/${qemu}/task/${t}/comm`, 'utf8'))?.[1];
				const to = v.name === 'plain-one-cpu' ? 0 : v.name === 'static' && vcpu !== undefined ? cpus[Number(vcpu) % cpus.length] : undefined;
				if (to !== undefined && spawnSync('taskset', ['-p', '-c', String(to), t], {stdio: 'ignore'}).status !== 0)
					throw new Error(`taskset could not move thread ${t} to CPU ${to}`);
			}
			await sleep(2000);
			const a = ticks(qemu);
			const from = performance.now();
			const data = `/tmp/ab-poll-${process.pid}.perf`;
			if (!values.perf) await sleep(6000);
			else if (
				spawnSync('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '1999', '-p', String(qemu), '-o', data, '--', 'sleep', '6'], {stdio: 'ignore'}).status !== 0
			)
				throw new Error('perf record failed');
			const b = ticks(qemu);
			const hundredths = (performance.now() - from) / 10; // clock ticks are 1/100 s
			const cpu = Object.keys(b)
				.sort()
				.map((k) => `${k} ${((b[k] - (a[k] ?? 0)) / hundredths).toFixed(2)}`)
				.join(', ');
			const where = values.perf ? `; ${profile(data)}` : '';
			await guest.waitFor('command exited', 60_000);
			const results = guest.lines.filter((l) => l.includes('pvwork-result')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
			const r = results.at(-1);
			all.get(v.name).push(r);
			say(`${v.name.padEnd(8)} ${fmt(r)}; CPU: ${cpu}${where}`);
		} finally {
			await guest.stop();
			await stopLoad();
		}
	}
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const keys = {
	sleeper: ['p50Us', 'p99Us', 'maxUs', 'burnerIterPerSec'],
	pingpong: ['roundTripsPerSec', 'p99Us'],
	locks: ['opsPerSec'],
	poll: ['iterPerSec', 'maxStallUs', 'burnerIterPerSec'],
}[values.workload];
for (const [name, rs] of all) {
	say(`median ${name.padEnd(8)} ${fmt({workload: values.workload, ...Object.fromEntries(keys.map((k) => [k, median(rs.map((r) => r[k]))]))})}`);
	if (values.workload === 'sleeper') say(`stalls  ${name.padEnd(8)} ${rs.filter((r) => r.p99Us > 100_000).length} of ${rs.length} VMs with a p99 over 100 ms`);
}
