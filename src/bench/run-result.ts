// What `pvrun bench --matrix FILE` writes (result.json), as types: samples,
// failures, skipped boots, the summary per cell, the host's record, and the
// gate's verdict against a baseline. bench/schema/result.schema.json
// describes the same. Types only, shared by the run, the gate and the reports.
import type {Environment} from './vms.js';

export const runResultSchema = 'pvrun-bench-run/1';

/** One workload's numbers from one boot. */
export interface RunSample {
	scenario: string;
	config: string;
	rep: number;
	/** Position of this boot within its repetition (the configurations' order rotates). */
	order: number;
	workload: string;
	values: Record<string, number>;
	/** The host's speed measured just before this boot (host-speed.ts: millions of loop rounds a second). */
	hostSpeed?: number;
}

/** A boot, or one workload in it, that gave no numbers. */
export interface RunFailure {
	scenario: string;
	config: string;
	rep: number;
	/** The workload whose run failed; absent: the whole boot. */
	workload?: string;
	error: string;
	/** The last lines the guest printed (the workload's, or the console's). */
	output?: string[];
	/** A boot that failed and then succeeded when started again: its samples are kept. */
	retried?: boolean;
}

export interface RunSkip {
	scenario: string;
	config: string;
	rep: number;
	reason: string;
}

/** The median, range and coefficient of variation (standard deviation over mean; 0 for one value) of a cell's repetitions. */
export interface CellStats {
	n: number;
	median: number;
	min: number;
	max: number;
	cv: number;
}

export interface RunSummaryRow {
	scenario: string;
	workload: string;
	metric: string;
	label: string;
	unit: string;
	better: 'higher' | 'lower';
	configs: Record<string, CellStats>;
	/** Each configuration's value over the baseline configuration's in the same repetition (same-run ratios). */
	ratios: Record<string, CellStats>;
}

export interface ScenarioRecord {
	name: string;
	title?: string;
	vcpus: number;
	hostCpus: number[];
	neighbourVms: number;
	neighbourVcpus: number;
	hostHogs: number;
	/** Busy vCPUs and processes per host CPU: (vCPUs + neighbours' vCPUs + hogs) / host CPUs. */
	overcommit: number;
}

/** What else the host ran while the benchmark did (its own VMs and processes excluded), sampled every second. */
export interface HostLoad {
	samples: number;
	/** The share (0-1) of the host's CPU time used by other processes: median and largest over the samples. */
	othersMedian: number;
	othersMax: number;
	/** The share of the host's CPU time its hypervisor took (steal): median over the samples. */
	stealMedian: number;
	/** The largest 1-minute load average seen. */
	loadMax: number;
}

export type GateVerdict = 'pass' | 'regression' | 'improvement' | 'missing' | 'untested';

export interface GateCheck {
	scenario: string;
	workload: string;
	metric: string;
	config: string;
	/** absolute: the values themselves; ratio: each repetition's value over the baseline configuration's. */
	kind: 'absolute' | 'ratio';
	better: 'higher' | 'lower';
	baseline?: {n: number; median: number};
	current?: {n: number; median: number};
	/** The current median over the baseline's. */
	change?: number;
	/** One-sided Welch t-test of a change beyond the threshold in the bad direction. */
	pValue?: number;
	/** Absolute values compared per unit of host speed (both runs measured it before each boot); baseline, current and change are so too. */
	adjusted?: boolean;
	verdict: GateVerdict;
	/** Whether this check can fail the gate (the `ratios` gate counts only ratio checks). */
	gating: boolean;
	why?: string;
}

export interface GateResult {
	baseline: {file: string; date: string; commit: string; host: string};
	mode: 'all' | 'ratios';
	/** The smallest change (a share: 0.05 = 5 %) that counts as a regression. */
	threshold: number;
	alpha: number;
	checks: GateCheck[];
	regressions: number;
	passed: boolean;
	warnings: string[];
}

export interface RunResult {
	schema: typeof runResultSchema;
	date: string;
	matrix: {file: string; name: string; title?: string; sha256: string};
	environment: Environment & {
		/** The host's load average (1, 5, 15 minutes) before the first boot. */
		loadBefore: [number, number, number];
		/** The share of the host's CPU time busy over the second before the first boot. */
		busyBefore: number;
		during?: HostLoad;
		/** The host's speed measured before each boot: median, smallest, largest. */
		hostSpeed?: {n: number; median: number; min: number; max: number};
	};
	options: {reps: number; timeLimitSeconds?: number; scenarios: string[]; workloads: string[]; configs: string[]; baselineConfig: string};
	scenarios: ScenarioRecord[];
	samples: RunSample[];
	failures: RunFailure[];
	skipped: RunSkip[];
	summary: RunSummaryRow[];
	/** Every planned boot ran (none skipped for the time limit). */
	complete: boolean;
	durationSeconds: number;
	gate?: GateResult;
}
