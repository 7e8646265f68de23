// What a run of the benchmark matrix produces, as types: the scenarios, one
// sample per workload and boot, the summary, and the whole result that
// bench/schema/matrix.schema.json describes. Types only, shared by the run
// (matrix.ts) and the report (matrix-report.ts).
import type {Spread} from '../util/stats.js';
import type {ConfigName, MatrixOptions, ScenarioId, WorkloadName} from './options.js';
import type {Environment} from './vms.js';

export interface Scenario {
	id: ScenarioId;
	title: string;
	/** The measured VM's vCPUs. */
	vcpus: number;
	/** A second VM (plain QEMU) whose vCPUs are all busy. */
	neighbourVm: boolean;
	/** Busy host processes (one per host CPU). */
	hostHogs: boolean;
	/** Two VMs alike, both measured, both run as the configuration says (its results: vm1., vm2., jain). */
	pair?: boolean;
}

/** One workload's result line from one boot. */
export interface Sample {
	scenario: ScenarioId;
	config: ConfigName;
	rep: number;
	/** Position of this boot within its repetition (the order rotates). */
	order: number;
	workload: WorkloadName;
	warmup: boolean;
	values: Record<string, number>;
}

/** The median and range of a configuration's repetitions. */
export type Stats = Spread;

export interface Summary {
	scenario: ScenarioId;
	workload: WorkloadName;
	metric: string;
	label: string;
	unit: string;
	better: 'higher' | 'lower';
	configs: Partial<Record<ConfigName, Stats>>;
	/** pvrun's median over plain QEMU's. */
	vsPlain?: number;
	/** pvrun's median over static pinning's. */
	vsStatic?: number;
	/** pvrun with critical sections observed over pvrun without (the overhead row). */
	csOverPvrun?: number;
	/** pvrun acting on critical sections over pvrun without. */
	actOverPvrun?: number;
	/** Each configuration's median over plain QEMU's, and the share of the gap from plain to the ceiling it closes. */
	ratios?: Partial<Record<ConfigName, {vsPlain: number; gapClosed?: number}>>;
	/** met: null when not measured or not applicable; why: a reason beside it (a target above the ceiling). */
	target?: {text: string; met: boolean | null; why?: string};
}

export interface MatrixResult {
	schema: 'pvrun-bench-matrix/1';
	date: string;
	environment: Environment & {
		/** The host's load average (1, 5, 15 minutes) before the first boot. */
		loadBefore?: [number, number, number];
		/** The share (0-1) of the host's CPU time busy over the second before the first boot: what else runs. */
		busyBefore?: number;
	};
	options: Omit<MatrixOptions, 'out'>;
	scenarios: Scenario[];
	samples: Sample[];
	summary: Summary[];
	/** Boots that failed, with the reason (the matrix goes on without them; a hung boot's says where it was); `console`: the last lines the guest's console showed, if it had started. */
	failures: Array<{scenario: ScenarioId; config: ConfigName; rep: number; error: string; console?: string[]}>;
	durationSeconds: number;
}
