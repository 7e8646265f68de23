// `pvrun bench hint-latency`: the hint round trip measured in the guest's
// clock (pvhint: pin → host confirms in shared memory), the host-side part
// (records visible → affinity applied) from pvrun's event log, and pvrun's
// own CPU use while the guest idles. Hints are measured three times: back to
// back (each pin right after the previous release is confirmed: the channel
// under load) and sparse (5 ms before each pin, so that every hint finds the
// guest, QEMU and pvrun asleep), both with the guest budget off (thousands and
// hundreds of changes a second: floods by its measure), and paced (100 ms
// before each pin) with the default budget, as a well-behaved guest hints.
// Writes raw samples as JSON.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import {bootGuest, pvrunCommand, readyLine, readyWithinMs} from '../guest/boot.js';
import {machineCpuTicks, procStatFields, stolenPercent} from '../host/proc.js';
import {ensureImage} from '../image/build.js';
import {PvrunError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {createProgress} from '../util/progress.js';
import {percentiles, type Percentiles} from '../util/stats.js';
export type {Percentiles};
import {defaultResultsDir, gitCommit} from './results-dir.js';
import {readEventLog} from '../vm/event-log.js';
import {vmOfQemu} from '../vm/state.js';
import {withTempDir} from './tempdir.js';
import {defaultGuestCpuPercent} from '../util/guest-budget.js';

/** One way of sending hints (back to back, or sparse), pooled over the runs. */
export interface HintSeries {
	/** Pause before each pin, µs (0: back to back). */
	pauseUs: number;
	/** pvrun's --pv-guest-cpu for the series (0: off; absent in results from before the option). */
	guestCpuPercent?: number;
	/** p99 of the pin round trip in each run (VMs booted afresh), to show the spread. */
	perRunRoundTripP99Us: number[];
	/** Share of this machine's CPU time its hypervisor took during each run, % (/proc/stat steal; 0 on bare metal). */
	perRunStolenPercent: number[];
	roundTripUs: Percentiles;
	releaseUs: Percentiles;
	hostSideUs: Percentiles;
	guestRelayUs: Percentiles;
	timeouts: number;
	/** Of the decisions measured, those the native fast path applied (the rest: pvrun's JavaScript thread). */
	fastDecisions: number;
	/** Times the guest budget made a kick or the agent's bytes wait, over the runs (the exit event's `budgetWaits`; absent in results from before it). */
	budgetWaits?: number;
	/**
	 * A short-lived process that pins itself the moment the guest says it is ready, in each
	 * run: its round trip, and the runs where the host never answered it within 10 s (absent
	 * in results from before it).
	 */
	firstPin?: {roundTripUs: number[]; missed: number};
	samples: {pinUs: number[]; unpinUs: number[]; hostUs: number[]; relayUs: number[]};
}

export interface HintLatencyResult {
	bench: 'hint-latency';
	date: string;
	host: {name: string; cpus: number; model: string; kernel: string};
	/** pvrun's commit ('' outside a git checkout). */
	commit: string;
	hints: number;
	warmup: number;
	runs: number;
	/** The guest's vCPUs (2 in results from before --vcpus). */
	vcpus?: number;
	/** Each pin right after the previous release was confirmed. */
	backToBack: HintSeries;
	/** A pause before each pin. */
	sparse: HintSeries;
	/** A longer pause before each pin, within the default guest budget (absent in results from before --pv-guest-cpu). */
	paced?: HintSeries;
	/** This machine's floor for a sparse pin's move, measured after the runs (native/pvprobe), or why not. */
	moveFloor: MoveFloor | {error: string};
	idleCpuPercent: number;
}

/**
 * A sparse pin usually finds its vCPU's thread runnable on the CPU where the
 * fast path woke, and the CPU to grant idle: `sched_setaffinity` must move a
 * runnable thread onto an idle CPU, and the kernel wakes that CPU. pvprobe
 * times that move (and, for reference, the move of a sleeping thread) from a
 * SCHED_FIFO thread, with the same pause before each.
 */
export interface MoveFloor {
	from: number;
	to: number;
	runnableToIdleUs: Percentiles;
	sleepingUs: Percentiles;
}

/** A big guest needs more than the default 512 MiB (64 vCPUs' per-CPU areas). */
function bigGuestMemory(vcpus: number): {memoryMiB?: number} {
	return vcpus > 16 ? {memoryMiB: 1024} : {};
}

/** How long the pin made the moment the guest is ready waits for the host's answer. */
const firstPinTimeoutMs = 10_000;

/** Pause before each sparse hint: long enough for the guest's and the host's threads to sleep. */
const sparsePauseUs = 5000;
/**
 * Pause before each paced hint: a pin and its release every 100 ms (20 changes of placement a
 * second) stay within pvrun's default guest budget (--pv-guest-cpu 5), so this series shows
 * what that budget costs a well-behaved guest. Back to back and sparse are floods by that
 * measure: they run with the budget off, to measure the hint path itself.
 */
const pacedPauseUs = 100_000;
/** Paced hints in each run, at most (each takes the pause). */
const pacedHintsMax = 150;

export interface HintLatencyOptions {
	/** Hints measured in each run. */
	hints: number;
	/** Hints before measuring, in each run. */
	warmup: number;
	/** Seconds of pvrun's CPU use measured while the guest idles. */
	idleSeconds: number;
	/** VMs booted one after the other, samples pooled. */
	runs: number;
	/** The guest's vCPUs (a big VM: a grant moves every floating vCPU's thread). */
	vcpus: number;
	/** Results folder (default under bench/results/). */
	out?: string;
}

/** Run the benchmark; prints a report and returns the result (also written under bench/results/). */
export async function benchHintLatency(options: HintLatencyOptions): Promise<HintLatencyResult> {
	const progress = createProgress('pvrun bench');
	const commit = await gitCommit();
	const image = await ensureImage({progress: createProgress('pvrun image')});
	return withTempDir('pvrun-bench-', async (dir) => {
		const backToBackRuns: RunSamples[] = [];
		const sparseRuns: RunSamples[] = [];
		const pacedRuns: RunSamples[] = [];
		for (let run = 1; run <= options.runs; run++) {
			for (const [pauseUs, into, what, hints, pvArgs] of [
				[0, backToBackRuns, 'back to back, --pv-guest-cpu off', options.hints, ['--pv-guest-cpu', 'off']],
				[sparsePauseUs, sparseRuns, `sparse, ${sparsePauseUs / 1000} ms apart, --pv-guest-cpu off`, options.hints, ['--pv-guest-cpu', 'off']],
				[pacedPauseUs, pacedRuns, `paced, ${pacedPauseUs / 1000} ms apart`, Math.min(options.hints, pacedHintsMax), []],
			] as const) {
				const step = progress.step(`hint round trip, run ${run}/${options.runs}, ${what}: ${hints} hints after ${options.warmup} warm-up`);
				const one = await measureRoundTrips(image, path.join(dir, `run-${run}-${pauseUs}.jsonl`), hints, options.warmup, pauseUs, pvArgs, options.vcpus);
				into.push(one);
				step.done(`p50 ${(percentiles(one.pinUs).p50 / 1000).toFixed(2)} ms, p99 ${(percentiles(one.pinUs).p99 / 1000).toFixed(2)} ms`);
			}
		}
		const probe = progress.step(`this machine's floor: moving a runnable thread onto an idle CPU, ${options.hints} times`);
		const moveFloor = await measureMoveFloor(options.hints, sparsePauseUs);
		probe.done(
			'error' in moveFloor ? moveFloor.error : `p50 ${moveFloor.runnableToIdleUs.p50.toFixed(1)} µs, p99 ${moveFloor.runnableToIdleUs.p99.toFixed(1)} µs`,
		);
		const idle = progress.step(`pvrun CPU use while the guest idles (${options.idleSeconds} s)`);
		const idleCpuPercent = await measureIdleCpu(image, options.idleSeconds, options.vcpus);
		idle.done(`${idleCpuPercent.toFixed(2)} % of one core`);
		const result: HintLatencyResult = {
			bench: 'hint-latency',
			date: new Date().toISOString(),
			host: {name: os.hostname(), cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', kernel: os.release()},
			commit,
			hints: options.hints,
			warmup: options.warmup,
			runs: options.runs,
			vcpus: options.vcpus,
			backToBack: series(backToBackRuns, 0, 0),
			sparse: series(sparseRuns, sparsePauseUs, 0),
			paced: series(pacedRuns, pacedPauseUs, defaultGuestCpuPercent),
			moveFloor,
			idleCpuPercent,
		};
		process.stdout.write(hintLatencyReport(result));
		const out = options.out ? path.resolve(options.out) : defaultResultsDir('hint-latency.json', result.date);
		fs.mkdirSync(out, {recursive: true});
		fs.writeFileSync(path.join(out, 'hint-latency.json'), `${JSON.stringify(result, null, 1)}\n`);
		progress.info(`raw samples: ${path.join(out, 'hint-latency.json')}`);
		return result;
	});
}

/** What one run (one VM) measured. */
export interface RunSamples {
	pinUs: number[];
	unpinUs: number[];
	hostUs: number[];
	relayUs: number[];
	timeouts: number;
	fastDecisions: number;
	/** The exit event's `budgetWaits`, summed. */
	budgetWaits: number;
	stolenPercent: number;
	/** The round trip of the pin made the moment the guest was ready, or undefined: no answer within 10 s. */
	firstPinUs: number | undefined;
}

/** Pool the runs of one series. */
export function series(runs: RunSamples[], pauseUs: number, guestCpuPercent: number): HintSeries {
	const samples = {
		pinUs: runs.flatMap((r) => r.pinUs),
		unpinUs: runs.flatMap((r) => r.unpinUs),
		hostUs: runs.flatMap((r) => r.hostUs),
		relayUs: runs.flatMap((r) => r.relayUs),
	};
	return {
		pauseUs,
		guestCpuPercent,
		perRunRoundTripP99Us: runs.map((r) => percentiles(r.pinUs).p99),
		perRunStolenPercent: runs.map((r) => Math.round(r.stolenPercent * 100) / 100),
		roundTripUs: percentiles(samples.pinUs),
		releaseUs: percentiles(samples.unpinUs),
		hostSideUs: percentiles(samples.hostUs),
		guestRelayUs: percentiles(samples.relayUs),
		timeouts: runs.reduce((n, r) => n + r.timeouts, 0),
		fastDecisions: runs.reduce((n, r) => n + r.fastDecisions, 0),
		budgetWaits: runs.reduce((n, r) => n + r.budgetWaits, 0),
		firstPin: {
			roundTripUs: runs.flatMap((r) => (r.firstPinUs === undefined ? [] : [r.firstPinUs])),
			missed: runs.filter((r) => r.firstPinUs === undefined).length,
		},
		samples,
	};
}

/** Boot through pvrun, run pvhint in the guest (`pauseUs` before each pin), collect guest and host samples. */
async function measureRoundTrips(
	image: {kernel: string; initrd: string},
	logFile: string,
	hints: number,
	warmup: number,
	pauseUs: number,
	pvrunArgs: readonly string[] = [],
	vcpus = 2,
): Promise<RunSamples> {
	const cpuBefore = machineCpuTicks();
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: vcpus,
		...bigGuestMemory(vcpus),
		// First a short-lived process that pins itself the moment the guest is ready (the hints are
		// live by then: the agent said so before the guest's ready line), then, in steady state, the series.
		run: `pvhint,wait,1,-n,1,-w,0,-t,${firstPinTimeoutMs};sleep,4;pvhint,wait,1,-n,${hints},-w,${warmup},-p,${pauseUs},-v`,
		// Every decision's line is a sample: no event-log budget for this pvrun (back to back,
		// thousands of hints a second).
		launcher: ['env', 'PVRUN_LOG_RATE=unlimited', ...pvrunCommand('--pv-log', logFile, ...pvrunArgs)],
	});
	try {
		const bootMs = readyWithinMs(vcpus);
		const first = await guest.waitFor(/^pvhint: vcpu=1 n=1 /, bootMs + firstPinTimeoutMs);
		const firstPinUs = /timeouts=0 .*pin_p50_us=([\d.]+)/.exec(first)?.[1];
		const summary = await guest.waitFor(new RegExp(`^pvhint: vcpu=1 n=${hints} `), bootMs + hints * (200 + pauseUs / 1000));
		// pvhint prints the measured hints only (not the warm-up).
		const samples = guest.lines.filter((l) => l.startsWith('pvhint-sample: '));
		const pinUs = samples.map((l) => Number(/pin_us=([\d.]+)/.exec(l)?.[1]));
		const unpinUs = samples.map((l) => Number(/unpin_us=([\d.]+)/.exec(l)?.[1]));
		const timeouts = Number(/timeouts=(\d+)/.exec(summary)?.[1] ?? 'NaN');
		await guest.waitFor('command exited', 30_000);
		await guest.exited;
		const events = readEventLog(logFile);
		const logged = (event: string, field: string) => events.filter((e) => e.event === event && typeof e[field] === 'number' && e[field] >= 0);
		const decisions = logged('applied', 'hostUs').slice(2 * warmup);
		const relayed = logged('hint', 'relayUs').map((e) => Number(e['relayUs']));
		// Each hint round changes the placement twice (pin, then release).
		const hostUs = decisions.map((e) => Number(e['hostUs']));
		const fastDecisions = decisions.filter((e) => e['fast'] === true).length;
		const relayUs = relayed.slice(2 * warmup);
		const waits = events.find((e) => e.event === 'exit')?.['budgetWaits'];
		const budgetWaits = Object.values(typeof waits === 'object' && waits !== null ? waits : {}).reduce(
			(n: number, v) => n + (typeof v === 'number' ? v : 0),
			0,
		);
		if (pinUs.length === 0 || pinUs.some((v) => !Number.isFinite(v))) throw new PvrunError(`pvhint reported no usable samples: ${summary}`);
		return {
			pinUs,
			unpinUs,
			hostUs,
			relayUs,
			timeouts,
			fastDecisions,
			budgetWaits,
			stolenPercent: stolenPercent(cpuBefore, machineCpuTicks()),
			firstPinUs: firstPinUs === undefined ? undefined : Number(firstPinUs),
		};
	} finally {
		await guest.stop();
	}
}

/** Run native/pvprobe (`n` moves, `gapUs` before each); its one line of samples, or why it could not measure. */
async function measureMoveFloor(n: number, gapUs: number): Promise<MoveFloor | {error: string}> {
	const r = await execa(path.join(packageRoot, 'native', 'pvprobe'), ['-n', String(n), '-g', String(gapUs)], {
		reject: false,
		timeout: 60_000 + n * 3 * (gapUs / 1000),
	});
	const line = r.stdout.split('\n').find((l) => l.startsWith('pvprobe-result '));
	if (r.exitCode !== 0 || !line) return {error: `not measured: ${r.stderr.trim().split('\n')[0] || r.shortMessage}`};
	const raw: unknown = JSON.parse(line.slice('pvprobe-result '.length));
	const o = (raw ?? {}) as Record<string, unknown>;
	const list = (k: string) => (Array.isArray(o[k]) && o[k].every((v) => typeof v === 'number' && Number.isFinite(v)) ? (o[k] as number[]) : undefined);
	const runnable = list('runnableToIdleUs');
	const sleeping = list('sleepingUs');
	if (!runnable?.length || !sleeping?.length || typeof o['from'] !== 'number' || typeof o['to'] !== 'number')
		return {error: 'not measured: pvprobe printed no usable samples'};
	return {from: o['from'], to: o['to'], runnableToIdleUs: percentiles(runnable), sleepingUs: percentiles(sleeping)};
}

/**
 * How long after the guest is ready the idle window starts: past the agent's
 * handshake, the program load and the first usage samples. (A window 3 s after
 * boot read 0.8–1.2 % where 30 s windows in steady state read 0.5–0.6 %:
 * docs/benchmarks.md.)
 */
const idleSettleMs = 10_000;

/** pvrun's own CPU time (utime+stime of its helper, which serves the VM beside QEMU) per wall second while the guest sleeps, in % of one core. */
async function measureIdleCpu(image: {kernel: string; initrd: string}, seconds: number, vcpus = 2): Promise<number> {
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: vcpus,
		...bigGuestMemory(vcpus),
		run: `sleep,${seconds + 20 + vcpus}`,
		launcher: pvrunCommand(),
	});
	try {
		await guest.waitFor(readyLine, 60_000);
		await new Promise((r) => setTimeout(r, idleSettleMs));
		// The pid the launcher started is QEMU's (pvrun exec'd it); pvrun's helper is in its state file.
		const helper = vmOfQemu(guest.pid)?.pvrunPid;
		if (helper === undefined) throw new PvrunError(`pvrun's helper for QEMU ${guest.pid} not found (no state file): cannot measure its CPU use`);
		const ticks = () => {
			const fields = procStatFields(helper) ?? [];
			return Number(fields[14]) + Number(fields[15]); // utime, stime of the whole process
		};
		const before = ticks();
		const started = performance.now();
		await new Promise((r) => setTimeout(r, seconds * 1000));
		const used = (ticks() - before) / 100; // USER_HZ is 100 on Linux
		return (100 * used) / ((performance.now() - started) / 1000);
	} finally {
		await guest.stop();
	}
}

/** How a series' guest budget reads in the report. */
function budgetWords(percent: number | undefined): string {
	if (percent === undefined) return 'before --pv-guest-cpu';
	return percent === 0 ? '--pv-guest-cpu off' : `--pv-guest-cpu ${percent}`;
}

/** The report printed after a run: each series' percentiles, the targets met, missed or not measured (no samples). */
export function hintLatencyReport(r: HintLatencyResult): string {
	const out: string[] = [];
	const ms = (us: number) => `${(us / 1000).toFixed(2)} ms`;
	const line = (label: string, p: Percentiles, f: (n: number) => string) =>
		out.push(
			`${label.padEnd(34)} n=${String(p.n).padStart(4)}  p50 ${f(p.p50).padStart(9)}  p90 ${f(p.p90).padStart(9)}  p99 ${f(p.p99).padStart(9)}  max ${f(p.max).padStart(9)}\n`,
		);
	out.push(
		`\nhint latency on ${r.host.name} (${r.host.cpus} CPUs, ${r.host.model}), guest under TCG, ${r.vcpus ?? 2} vCPUs, ${r.runs} runs of ${r.hints} hints pooled\n`,
	);
	const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
	const p99Below = (p: Percentiles, limitUs: number) => (p.n === 0 ? 'not measured' : verdict(p.p99 < limitUs));
	const all: Array<[string, HintSeries]> = [
		[`back to back (${budgetWords(r.backToBack.guestCpuPercent)})`, r.backToBack],
		[`sparse (${r.sparse.pauseUs / 1000} ms before each pin, ${budgetWords(r.sparse.guestCpuPercent)})`, r.sparse],
	];
	if (r.paced) all.push([`paced (${r.paced.pauseUs / 1000} ms before each pin, ${budgetWords(r.paced.guestCpuPercent)}: a well-behaved guest)`, r.paced]);
	for (const [what, s] of all) {
		out.push(`\n${what}\n`);
		line('round trip, guest clock (pin)', s.roundTripUs, ms);
		line('round trip, guest clock (release)', s.releaseUs, ms);
		line('host side (visible → applied)', s.hostSideUs, (us) => `${us.toFixed(0)} µs`);
		out.push(`decisions by the native fast path    ${s.fastDecisions} of ${s.hostSideUs.n}\n`);
		line('guest part (BPF → agent relay)', s.guestRelayUs, (us) => `${us.toFixed(0)} µs`);
		out.push(`round trip p99 per run               ${s.perRunRoundTripP99Us.map((us) => ms(us)).join(', ')}\n`);
		out.push(`CPU time stolen by the hypervisor    ${s.perRunStolenPercent.map((p) => `${p.toFixed(2)} %`).join(', ')} (per run)\n`);
		out.push(`timeouts                            ${s.timeouts}\n`);
		if (s.firstPin)
			out.push(
				`pin the moment the guest is ready    ${s.firstPin.roundTripUs.map((us) => ms(us)).join(', ') || '-'} (per run)${s.firstPin.missed ? `; MISSED in ${s.firstPin.missed} run${s.firstPin.missed === 1 ? '' : 's'} (no answer in 10 s)` : ''}\n`,
			);
		if (s.guestCpuPercent && s.budgetWaits !== undefined) out.push(`waits for the guest budget           ${s.budgetWaits}\n`);
		if (s === r.paced) out.push('(no target: a machine-bound tail at long pauses; what matters is the same series before and after a change)\n');
		else out.push(`targets (issue): round trip p99 < 2 ms: ${p99Below(s.roundTripUs, 2000)}; host side p99 < 50 µs: ${p99Below(s.hostSideUs, 50)}\n`);
		if (s === r.sparse) {
			const f = r.moveFloor;
			if ('error' in f) out.push(`this machine's floor for a sparse pin's move: ${f.error}\n`);
			else {
				line(`floor: runnable thread → idle CPU ${f.to}`, f.runnableToIdleUs, (us) => `${us.toFixed(0)} µs`);
				line('  (a sleeping thread, for reference)', f.sleepingUs, (us) => `${us.toFixed(0)} µs`);
				out.push('(a sparse pin makes the first move: its vCPU thread is runnable where the fast path woke; docs/benchmarks.md)\n');
			}
		}
	}
	out.push(`\npvrun CPU while the guest idles     ${r.idleCpuPercent.toFixed(2)} % of one core (target < 1 %: ${verdict(r.idleCpuPercent < 1)})\n`);
	out.push('baseline (crude prototype, same machine type): round trip p50 0.49 / p90 3.5 / p99 5.3 ms, host side p99 55 µs\n');
	return out.join('');
}
