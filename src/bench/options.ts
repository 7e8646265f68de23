// The matrix's names and default options, apart from the matrix itself so that
// the command line can offer them without loading the benchmark.
export const configNames = ['plain', 'static', 'pvrun'] as const;
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
	/** Results folder; default bench/results/<date>-<host>[-quick][-N] (a new N rather than overwrite a run's results). */
	out?: string;
}

export const quickOptions: Omit<MatrixOptions, 'out'> = {quick: true, reps: 1, seconds: 1, scenarios: [...scenarioIds], workloads: [...workloadNames]};
export const fullOptions: Omit<MatrixOptions, 'out'> = {quick: false, reps: 3, seconds: 10, scenarios: [...scenarioIds], workloads: [...workloadNames]};
