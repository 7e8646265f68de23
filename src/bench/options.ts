// The matrix's names and default options, apart from the matrix itself so that
// the command line can offer them without loading the benchmark.
/**
 * pvrun-cs: pvrun with critical sections observed (--pv-cs observe), for the overhead row against
 * pvrun; pvrun-act: acted on (--pv-cs act); ceiling: the best placement the machine allows for the
 * workload (no overcommit, or the oracle static placement: matrix.ts, ceilingOf).
 */
export const configNames = ['plain', 'static', 'pvrun', 'pvrun-cs', 'pvrun-act', 'ceiling'] as const;
export type ConfigName = (typeof configNames)[number];
export const workloadNames = ['poll', 'pingpong', 'sleeper', 'locks', 'hintlat', 'uspin', 'klock'] as const;
export type WorkloadName = (typeof workloadNames)[number];
export const scenarioIds = ['a', 'b', 'c', 'd', 'e', 'f', 'g'] as const;
export type ScenarioId = (typeof scenarioIds)[number];

export interface MatrixOptions {
	quick: boolean;
	reps: number;
	/** Seconds per workload run. */
	seconds: number;
	scenarios: ScenarioId[];
	workloads: WorkloadName[];
	/** The configurations each scenario boots, in rotating order. */
	configs: ConfigName[];
	/** Scenarios that boot fewer configurations than `configs` (the quick run's). */
	scenarioConfigs?: Partial<Record<ScenarioId, ConfigName[]>>;
	/** Results folder; default bench/results/<date>-<host>[-quick][-N] (a new N rather than overwrite a run's results). */
	out?: string;
}

export const fullOptions: Omit<MatrixOptions, 'out'> = {
	quick: false,
	reps: 3,
	seconds: 10,
	scenarios: [...scenarioIds],
	workloads: [...workloadNames],
	configs: [...configNames],
	// The big VMs (e, f: poll and the hint latency only) against plain QEMU and static pinning.
	scenarioConfigs: {e: ['plain', 'static', 'pvrun'], f: ['plain', 'static', 'pvrun'], g: ['plain', 'static', 'pvrun']},
};
// The quick run (the smoke test's) boots every configuration once, in scenario a, and plain and
// pvrun in the others, whose set-up (a second VM, busy host processes, two measured VMs) and chart are what they test; it
// leaves the overhead configuration out (its noise is larger than the 3 % it would measure), and
// scenario d, which is scenario c's set-up with scenario a's guest.
export const quickOptions: Omit<MatrixOptions, 'out'> = {
	...fullOptions,
	quick: true,
	reps: 1,
	// Half a second: every workload still runs and prints its line, and each boot is shorter.
	seconds: 0.5,
	scenarios: ['a', 'b', 'c', 'g'],
	configs: ['plain', 'static', 'pvrun', 'pvrun-act', 'ceiling'],
	scenarioConfigs: {b: ['plain', 'pvrun'], c: ['plain', 'pvrun'], g: ['plain', 'pvrun']},
};
