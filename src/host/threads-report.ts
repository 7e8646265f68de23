// What the host shows of a process and its children's threads over a short sample: each
// thread's name, state, share of a CPU, where in the kernel a sleeping one waits (a lock's
// futex, a poll, a sleep), the CPUs it may run on and a real-time policy. Said
// when a guest misses a deadline (a boot that shows nothing), so that a rare hang on a
// machine nobody can log in to (a CI runner) says whether the vCPUs ran, waited or were
// pinned somewhere odd.
import fs from 'node:fs';
import os from 'node:os';
import {formatCpuList, threadCpusAllowed} from './cpus.js';
import {machineCpuTicks, processThreads, procStatFields, stolenPercent, threadSchedstat} from './proc.js';

/** Clock ticks per second in /proc's CPU times (USER_HZ: 100 on Linux). */
const ticksPerSecond = 100;
const policies: Record<string, string> = {1: 'FIFO', 2: 'RR', 3: 'BATCH', 5: 'IDLE', 6: 'DEADLINE'};

interface ThreadSample {
	pid: number;
	tid: number;
	name: string;
	state: string;
	/** ns on a CPU, and runnable but waiting for one (schedstat; without it, CPU ticks and no wait). */
	runNs: number;
	waitNs: number | undefined;
	policy: string;
	cpus: string;
	/** The kernel function a sleeping thread waits in (/proc's wchan), if it says. */
	wchan: string;
}

/** Where thread `tid` of `pid` sleeps in the kernel: a symbol name, or '' (running, gone, hidden). */
function waitChannel(pid: number, tid: number): string {
	try {
		const name = fs.readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8').trim();
		return /^[A-Za-z_][\w.]*$/.test(name) ? name : '';
	} catch {
		return '';
	}
}

/** The children of process `pid` (from each of its threads' children file). */
function childPids(pid: number): number[] {
	const found = new Set<number>();
	for (const tid of processThreads(pid)) {
		try {
			for (const word of fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(/\s+/)) if (/^\d+$/.test(word)) found.add(Number(word));
		} catch {
			// the thread ended
		}
	}
	return [...found];
}

function sampleThreads(pids: readonly number[]): ThreadSample[] {
	const out: ThreadSample[] = [];
	for (const pid of pids)
		for (const tid of processThreads(pid)) {
			const fields = procStatFields(pid, tid);
			if (!fields) continue;
			let cpus = '?';
			try {
				cpus = formatCpuList(threadCpusAllowed(pid, tid));
			} catch {
				// the thread ended between the two reads
			}
			// Without schedstat: CPU ticks, and no wait.
			const sched = threadSchedstat(pid, tid);
			const runNs = sched?.runNs ?? (Number(fields[14]) + Number(fields[15])) * (1e9 / ticksPerSecond);
			const waitNs = sched?.waitNs;
			out.push({
				pid,
				tid,
				name: fields[2] ?? '?',
				state: fields[3] ?? '?',
				runNs,
				waitNs,
				policy: policies[fields[41] ?? '0'] ?? '',
				cpus,
				wchan: waitChannel(pid, tid),
			});
		}
	return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One line per process: process `pid` and its children, each thread as `name state N%
 * (waited M%) [in WCHAN] on CPUS [policy]` over `sampleMs` (N: share of a CPU it ran, M: of the time it
 * was runnable and waited for a CPU), after a line with the machine's busy share and load. Empty
 * when the process is gone.
 */
export async function threadsReport(pid: number, sampleMs = 1000): Promise<string> {
	const pids = [pid, ...childPids(pid)];
	const machine0 = machineCpuTicks();
	const before = new Map(sampleThreads(pids).map((s) => [s.tid, s]));
	if (before.size === 0) return '';
	const started = performance.now();
	await sleep(sampleMs);
	const seconds = (performance.now() - started) / 1000;
	const machine1 = machineCpuTicks();
	const load = os
		.loadavg()
		.map((l) => l.toFixed(2))
		.join(' ');
	const lines = [`host over ${seconds.toFixed(1)} s: load ${load}, steal ${stolenPercent(machine0, machine1).toFixed(0)} %`];
	const byPid = new Map<number, string[]>();
	for (const s of sampleThreads(pids)) {
		const was = before.get(s.tid);
		const percent = (ns: number) => `${Math.round((ns / 1e9 / seconds) * 100)}%`;
		const ran = was ? percent(s.runNs - was.runNs) : '?';
		const waited = was && s.waitNs !== undefined && was.waitNs !== undefined ? ` (waited ${percent(s.waitNs - was.waitNs)})` : '';
		const words = byPid.get(s.pid) ?? [];
		const asleep = s.state !== 'R' && s.wchan ? ` in ${s.wchan}` : '';
		words.push(`${s.name} ${s.state} ${ran}${waited}${asleep} on ${s.cpus}${s.policy ? ` ${s.policy}` : ''}`);
		byPid.set(s.pid, words);
	}
	for (const [p, words] of byPid) lines.push(`${p}: ${words.join('; ')}`);
	return lines.join('\n');
}
