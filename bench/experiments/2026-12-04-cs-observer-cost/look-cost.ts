// The critical-section observer's cost per look on this host: a real area,
// `threads` busy threads of this process standing in for vCPU threads, and
// the /proc reader (opened files) against reading each file anew, and (as
// root) the host BPF source (src/fast/sched.ts), which reads no /proc file.
// Run: node --import=tsx bench/experiments/2026-12-04-cs-observer-cost/look-cost.ts [threads]
import fs from 'node:fs';
import {Worker} from 'node:worker_threads';
import {CsObserver, ProcHostReader, type HostReader} from '../../../src/hints/cs/observer.js';
import {createShmArea} from '../../../src/shm/area.js';
import {emptyCounters} from '../../../src/shm/counters.js';
import {procStatFields} from '../../../src/host/proc.js';
import {HostSched} from '../../../src/fast/sched.js';

const n = Number(process.argv[2] ?? 2);
const looks = 3000;

/** The first version: open and read both files at every look. */
const fresh: HostReader = {
	thread(pid, tid) {
		let f: number[];
		try {
			f = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
		} catch {
			return undefined;
		}
		const stat = procStatFields(pid, tid);
		return {execNs: f[0] ?? 0, runDelayNs: f[1] ?? 0, runnable: stat?.[3] === 'R', cpu: Number(stat?.[39])};
	},
	cpuWaits() {
		try {
			fs.readFileSync('/proc/schedstat', 'utf8');
		} catch {
			// absent
		}
		return new Map();
	},
	now: () => Number(process.hrtime.bigint()),
};

const workers = Array.from({length: n}, () => new Worker('setInterval(() => {}, 1000)', {eval: true}));
await new Promise((r) => setTimeout(r, 300));
const tids = fs
	.readdirSync('/proc/self/task')
	.map(Number)
	.filter((t) => t !== process.pid)
	.slice(0, n);
const area = createShmArea(`/dev/shm/pvrun-look-cost-${process.pid}`, n);
try {
	for (const rep of [1, 2, 3])
		for (const [name, reader] of [
			['open files', new ProcHostReader()],
			['read anew', fresh],
		] as const) {
			const obs = new CsObserver(area, process.pid, emptyCounters(), () => {}, reader);
			obs.setThreads(tids);
			const t0 = process.hrtime.bigint();
			for (let i = 0; i < looks; i++) obs.look();
			const us = Number(process.hrtime.bigint() - t0) / 1e3 / looks;
			obs.stop();
			console.log(`rep ${rep} ${name}: ${n} threads, ${us.toFixed(1)} µs per look (${((us / 10_000) * 100).toFixed(2)} % of a CPU at one look per 10 ms)`);
		}
	if (process.getuid?.() === 0)
		for (const rep of [1, 2, 3]) {
			const obs = new CsObserver(area, process.pid, emptyCounters(), () => {}, undefined, HostSched.start(area.path));
			obs.setThreads(tids);
			const t0 = process.hrtime.bigint();
			for (let i = 0; i < looks; i++) obs.look();
			const us = Number(process.hrtime.bigint() - t0) / 1e3 / looks;
			obs.stop();
			console.log(`rep ${rep} bpf source: ${n} threads, ${us.toFixed(1)} µs per look (${((us / 10_000) * 100).toFixed(2)} % of a CPU at one look per 10 ms)`);
		}
} finally {
	area.remove();
	for (const w of workers) void w.terminate();
}
