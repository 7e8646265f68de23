// What else a host runs while a benchmark does: every second, the host's busy
// CPU time less that of the benchmark's own process tree (itself, QEMU, pvrun,
// busy neighbours, and those of them that ended). A CI runner that shares its
// CPUs with another job shows here, and the gate says its verdict means little.
import fs from 'node:fs';
import os from 'node:os';
import {busyShare, machineCpuTicks, procStatFields, stolenPercent} from '../host/proc.js';
import type {HostLoad} from './run-result.js';

/**
 * The CPU ticks of `root` and its descendants, from /proc: each one's own (user + system) and
 * those of its children it has reaped (cutime + cstime), so that a process that ends between
 * two looks is still counted, in its parent's.
 */
export function treeTicks(root: number = process.pid): number {
	const parent = new Map<number, number>();
	const ticks = new Map<number, number>();
	for (const name of fs.readdirSync('/proc')) {
		const pid = Number(name);
		if (!Number.isInteger(pid) || pid <= 0) continue;
		const f = procStatFields(pid);
		if (!f) continue;
		parent.set(pid, Number(f[4]));
		ticks.set(pid, Number(f[14]) + Number(f[15]) + Number(f[16]) + Number(f[17]));
	}
	let sum = 0;
	for (const [pid, t] of ticks)
		for (let p: number | undefined = pid, depth = 0; p !== undefined && p > 0 && depth < 64; p = parent.get(p), depth++)
			if (p === root) {
				sum += Number.isFinite(t) ? t : 0;
				break;
			}
	return sum;
}

/** Sample every `intervalMs` until stopped; `stop()` gives the summary (undefined before two samples). */
export function watchHostLoad(intervalMs = 1000): {stop: () => HostLoad | undefined} {
	const shares: number[] = [];
	const steals: number[] = [];
	let loadMax = os.loadavg()[0] ?? 0;
	let last = {machine: machineCpuTicks(), ours: treeTicks()};
	const timer = setInterval(() => {
		const now = {machine: machineCpuTicks(), ours: treeTicks()};
		const total = now.machine.total - last.machine.total;
		if (total > 0) {
			// Busy for processes: neither idle nor taken by the hypervisor (steal: counted apart).
			const steal = stolenPercent(last.machine, now.machine) / 100;
			const others = busyShare(last.machine, now.machine) - steal - (now.ours - last.ours) / total;
			shares.push(Math.min(1, Math.max(0, others)));
			steals.push(Math.min(1, Math.max(0, steal)));
		}
		loadMax = Math.max(loadMax, os.loadavg()[0] ?? 0);
		last = now;
	}, intervalMs);
	timer.unref();
	return {
		stop: () => {
			clearInterval(timer);
			if (!shares.length) return undefined;
			const sorted = [...shares].sort((a, b) => a - b);
			const stolen = [...steals].sort((a, b) => a - b);
			const round = (x: number) => Math.round(x * 1000) / 1000;
			return {
				samples: shares.length,
				othersMedian: round(sorted[sorted.length >> 1] ?? 0),
				othersMax: round(sorted.at(-1) ?? 0),
				stealMedian: round(stolen[stolen.length >> 1] ?? 0),
				loadMax: Math.round(loadMax * 100) / 100,
			};
		},
	};
}
