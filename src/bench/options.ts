// The matrix's names and default options, apart from the matrix itself so that
// the command line can offer them without loading the benchmark.
/** pvrun-cs: pvrun with critical sections observed (--pv-cs observe), for the overhead row against pvrun. */
export const configNames = ['plain', 'static', 'pvrun', 'pvrun-cs'] as const;
export type ConfigName = (typeof configNames)[number];
export const workloadNames = ['poll', 'pingpong', 'sleeper', 'locks', 'hintlat'] as const;
export type WorkloadName = (typeof workloadNames)[number];
export const scenarioIds = ['a', 'b', 'c'] as const;
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
};
// The quick run (the smoke test's) leaves the overhead configuration out: a quick run's noise is
// larger than the 3 % it would measure.
export const quickOptions: Omit<MatrixOptions, 'out'> = {...fullOptions, quick: true, reps: 1, seconds: 1, configs: ['plain', 'static', 'pvrun']};
