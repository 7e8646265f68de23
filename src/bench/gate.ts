// The regression gate of `pvrun bench --matrix FILE --baseline OLD.json`:
// every cell of the baseline run (scenario, workload, metric, configuration)
// compared with the same cell now, over the repetitions, by a one-sided
// Welch t-test on the logarithms of the values (run-to-run noise is a factor,
// not an amount) whose null hypothesis is "no worse than the threshold". A cell
// fails the gate only where the data say, at significance alpha, that it got
// worse by more than the threshold. Two kinds of cells: the values themselves
// (absolute), and each repetition's value over the baseline configuration's in
// the same repetition (ratio: a host that runs slower today cancels out).
// docs/ci.md explains the choices.
import fs from 'node:fs';
import ttest2 from '@stdlib/stats-ttest2';
import {UsageError} from '../util/errors.js';
import {cv, spread} from '../util/stats.js';
import {runResultSchema, type GateCheck, type GateResult, type RunResult, type RunSample} from './run-result.js';

export interface GateOptions {
	/** The smallest change that counts, as a share (0.05: 5 %). */
	threshold: number;
	alpha: number;
	/** all: absolute and ratio cells fail the gate; ratios: only ratio cells (absolute ones are shown). */
	mode: 'all' | 'ratios';
}

export const defaultGate: GateOptions = {threshold: 0.05, alpha: 0.05, mode: 'all'};

/** Read a result.json of `pvrun bench --matrix` (`role`: what it is to the gate, for the error line). */
export function loadRunResult(file: string, role: 'baseline' | 'result' = 'baseline'): RunResult {
	let raw: unknown;
	try {
		raw = JSON.parse(fs.readFileSync(file, 'utf8'));
	} catch (error) {
		throw new UsageError(`cannot read ${role} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {cause: error});
	}
	const r = raw as Partial<RunResult> | null;
	if (typeof r !== 'object' || r === null || r.schema !== runResultSchema || !Array.isArray(r.samples) || !Array.isArray(r.failures))
		throw new UsageError(`${role} ${file} is not a result of pvrun bench --matrix (schema ${runResultSchema})`);
	return r as RunResult;
}

interface Cell {
	scenario: string;
	workload: string;
	metric: string;
	config: string;
	kind: 'absolute' | 'ratio';
}

const cellKey = (c: Cell) => `${c.scenario}\u0000${c.workload}\u0000${c.metric}\u0000${c.config}\u0000${c.kind}`;

/** How absolute values are put in the baseline host's units: each sample's host speed against `ref`. */
export interface SpeedAdjust {
	ref: number;
	better: (scenario: string, workload: string, metric: string) => 'higher' | 'lower' | undefined;
}

/**
 * Every cell's values: the absolute ones (per unit of host speed, with `adjust`: a rate times
 * ref/speed, a time times speed/ref), and the same-run ratios to `baselineConfig` (per repetition).
 */
export function cellValues(samples: readonly RunSample[], baselineConfig: string, adjust?: SpeedAdjust): Map<string, {cell: Cell; values: number[]}> {
	const cells = new Map<string, {cell: Cell; values: number[]}>();
	const add = (cell: Cell, v: number) => {
		const k = cellKey(cell);
		const entry = cells.get(k) ?? {cell, values: []};
		entry.values.push(v);
		cells.set(k, entry);
	};
	for (const s of samples)
		for (const [metric, v] of Object.entries(s.values)) {
			const factor = adjust && s.hostSpeed ? adjust.ref / s.hostSpeed : 1;
			add(
				{scenario: s.scenario, workload: s.workload, metric, config: s.config, kind: 'absolute'},
				adjust?.better(s.scenario, s.workload, metric) === 'lower' ? v / factor : v * factor,
			);
			if (s.config === baselineConfig) continue;
			const base = samples.find((b) => b.config === baselineConfig && b.rep === s.rep && b.scenario === s.scenario && b.workload === s.workload)?.values[
				metric
			];
			if (base !== undefined && base !== 0) add({scenario: s.scenario, workload: s.workload, metric, config: s.config, kind: 'ratio'}, v / base);
		}
	return cells;
}

/**
 * p-value of "current is worse than baseline by more than `threshold`" (one-sided Welch t-test
 * on logarithms; on the values themselves, relative to the baseline's mean, where one is not
 * positive). Identical repetitions on both sides: 0 if the change is beyond the threshold, else 1.
 */
export function worsePValue(baseline: readonly number[], current: readonly number[], better: 'higher' | 'lower', threshold: number): number {
	const positive = [...baseline, ...current].every((v) => v > 0);
	const tx = (v: number) => (positive ? Math.log(v) : v);
	const b = baseline.map(tx);
	const c = current.map(tx);
	const meanB = b.reduce((x, y) => x + y, 0) / b.length;
	const meanC = c.reduce((x, y) => x + y, 0) / c.length;
	// The shift that counts: a factor on logarithms, else a share of the baseline's mean.
	const shift = positive ? Math.log(better === 'higher' ? 1 - threshold : 1 + threshold) : (better === 'higher' ? -1 : 1) * threshold * Math.abs(meanB);
	const flat = (xs: readonly number[]) => xs.every((x) => x === xs[0]);
	if (flat(b) && flat(c)) {
		const worse = better === 'higher' ? meanC - meanB < shift : meanC - meanB > shift;
		return worse ? 0 : 1;
	}
	const out = ttest2(c, b, {alternative: better === 'higher' ? 'less' : 'greater', difference: shift});
	return Number.isFinite(out.pValue) ? out.pValue : 1;
}

/** Whether a check fails the gate: it may (its kind gates), and got worse or lost its result. */
export function failsGate(c: GateCheck): boolean {
	return c.gating && (c.verdict === 'regression' || c.verdict === 'missing');
}

/** Compare `current` with `baseline`, cell by cell; `baselineConfig` names the ratios' denominator. */
export function gate(current: RunResult, baseline: RunResult, baselineFile: string, options: GateOptions): GateResult {
	const better = new Map<string, 'higher' | 'lower'>();
	for (const r of [...baseline.summary, ...current.summary]) better.set(`${r.scenario}\u0000${r.workload}\u0000${r.metric}`, r.better);
	// Absolute values per unit of host speed where both runs measured it before every boot.
	const speeds = (r: RunResult) => r.samples.map((s) => s.hostSpeed ?? 0);
	const measured = [...speeds(baseline), ...speeds(current)].every((v) => v > 0) && baseline.samples.length > 0;
	const adjust: SpeedAdjust | undefined = measured
		? {ref: spread(speeds(baseline)).median, better: (scenario, workload, metric) => better.get(`${scenario}\u0000${workload}\u0000${metric}`)}
		: undefined;
	const before = cellValues(baseline.samples, current.options.baselineConfig, adjust);
	const now = cellValues(current.samples, current.options.baselineConfig, adjust);
	const checks: GateCheck[] = [];
	for (const [key, {cell, values: b}] of before) {
		const dir = better.get(`${cell.scenario}\u0000${cell.workload}\u0000${cell.metric}`);
		if (!dir) continue; // a value the matrix does not name as a metric (not in the summary)
		const c = now.get(key)?.values ?? [];
		const gating = options.mode === 'all' || cell.kind === 'ratio';
		const check: GateCheck = {
			...cell,
			better: dir,
			baseline: {n: b.length, median: spread(b).median},
			verdict: 'untested',
			gating,
			...(adjust && cell.kind === 'absolute' ? {adjusted: true} : {}),
		};
		checks.push(check);
		if (!c.length) {
			const failed = current.failures.find(
				(f) =>
					f.scenario === cell.scenario &&
					(f.config === cell.config || (cell.kind === 'ratio' && f.config === current.options.baselineConfig)) &&
					!f.retried &&
					(!f.workload || f.workload === cell.workload),
			);
			const ran =
				current.options.scenarios.includes(cell.scenario) && current.options.workloads.includes(cell.workload) && current.options.configs.includes(cell.config);
			if (failed) {
				check.verdict = 'missing';
				check.why = `no result: ${failed.error}`;
			} else check.why = ran ? 'no result in this run (skipped)' : 'not in this run';
			continue;
		}
		check.current = {n: c.length, median: spread(c).median};
		if (check.baseline && check.baseline.median !== 0) check.change = round(check.current.median / check.baseline.median, 4);
		if (b.length < 2 || c.length < 2) {
			check.why = 'needs 2 repetitions on each side';
			continue;
		}
		const p = worsePValue(b, c, dir, options.threshold);
		const pBetter = worsePValue(b, c, dir === 'higher' ? 'lower' : 'higher', options.threshold);
		check.pValue = round(p, 4);
		check.verdict = p < options.alpha ? 'regression' : pBetter < options.alpha ? 'improvement' : 'pass';
	}
	const failing = checks.filter(failsGate);
	return {
		baseline: {file: baselineFile, date: baseline.date, commit: baseline.environment.commit, host: baseline.environment.host},
		mode: options.mode,
		threshold: options.threshold,
		alpha: options.alpha,
		checks,
		regressions: failing.length,
		passed: failing.length === 0,
		warnings: noiseWarnings(current, baseline, checks, before, now, options),
	};
}

/** Why the gate's verdict may mean little: noisy repetitions, a busy or different host, too few repetitions. */
export function noiseWarnings(
	current: RunResult,
	baseline: RunResult,
	checks: readonly GateCheck[],
	before: Map<string, {values: number[]}>,
	now: Map<string, {values: number[]}>,
	options: GateOptions,
): string[] {
	const warnings: string[] = [];
	const pct = (x: number) => `${Math.round(x * 100)} %`;
	const tested = checks.filter((c) => c.pValue !== undefined);
	if (checks.length && !tested.length) warnings.push('nothing could be tested: the gate needs 2 repetitions on each side (3 or more recommended)');
	let noisy = 0;
	let worst = 0;
	for (const c of tested) {
		const k = cellKey(c);
		const spread = Math.max(cv(before.get(k)?.values ?? []), cv(now.get(k)?.values ?? []));
		worst = Math.max(worst, spread);
		if (spread > options.threshold) noisy++;
	}
	if (noisy)
		warnings.push(
			`too noisy for the gate to mean much in ${noisy} of ${tested.length} cells: repetitions vary by up to ${pct(worst)} (coefficient of variation), more than the ${pct(options.threshold)} the gate looks for`,
		);
	for (const [who, r] of [
		['this run', current],
		['the baseline', baseline],
	] as const) {
		const during = r.environment.during;
		if (during && during.othersMedian > 0.1)
			warnings.push(`other processes used ${pct(during.othersMedian)} of the host's CPU time during ${who} (median; at most ${pct(during.othersMax)})`);
		if (during && during.stealMedian > 0.1)
			warnings.push(`the hypervisor took ${pct(during.stealMedian)} of the host's CPU time during ${who} (steal, median)`);
		if (r.environment.busyBefore > 0.2) warnings.push(`the host was ${pct(r.environment.busyBefore)} busy before ${who} started`);
	}
	const e = current.environment;
	const b = baseline.environment;
	if (e.hostSpeed && b.hostSpeed && Math.abs(e.hostSpeed.median / b.hostSpeed.median - 1) > 0.1) {
		const ratio = e.hostSpeed.median / b.hostSpeed.median;
		warnings.push(
			`the host ran ${pct(Math.abs(ratio - 1))} ${ratio < 1 ? 'slower' : 'faster'} than during the baseline (a CPU loop timed before each boot): absolute cells are compared per unit of host speed`,
		);
	}
	const differ = (['cpuModel', 'cpus', 'accel', 'kernel'] as const).filter((k) => e[k] !== b[k]);
	if (differ.length)
		warnings.push(
			`the baseline ran on another host (${differ.map((k) => `${k}: ${String(b[k])} then, ${String(e[k])} now`).join('; ')}): only the ratio cells compare like with like`,
		);
	return warnings;
}

function round(x: number, digits: number): number {
	const f = 10 ** digits;
	return Math.round(x * f) / f;
}
