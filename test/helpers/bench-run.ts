// A made-up result of `pvrun bench --matrix FILE` (src/bench/run-result.ts) for
// the gate's and the reports' tests: configuration -> one value of metric `ops`
// of workload `w` in scenario `s` per repetition.
import {summarizeRun} from '../../src/bench/run-matrix.js';
import type {RunResult, RunSample} from '../../src/bench/run-result.js';

export function fakeRun(values: Record<string, number[]>, extra: Partial<RunResult> = {}): RunResult {
	const samples: RunSample[] = [];
	for (const [config, vs] of Object.entries(values))
		for (const [rep, ops] of vs.entries()) samples.push({scenario: 's', config, rep, order: 0, workload: 'w', values: {ops}});
	return {
		schema: 'pvrun-bench-run/1',
		date: '2026-12-06T10:00:00.000Z',
		matrix: {file: '/m.json', name: 'm', sha256: '0'.repeat(64)},
		environment: {
			host: 'h',
			cpus: 2,
			cpuModel: 'cpu',
			kernel: '6.1',
			qemu: 'QEMU 7.2',
			accel: 'tcg',
			pvrun: '0.1.0',
			commit: 'abc',
			node: 'v20',
			loadBefore: [0, 0, 0],
			busyBefore: 0,
		},
		options: {reps: 3, scenarios: ['s'], workloads: ['w'], configs: Object.keys(values), baselineConfig: 'plain'},
		scenarios: [{name: 's', vcpus: 2, hostCpus: [0, 1], neighbourVms: 0, neighbourVcpus: 2, hostHogs: 0, overcommit: 1}],
		samples,
		failures: [],
		skipped: [],
		summary: summarizeRun(samples, [{name: 'w', command: 'x', result: {regex: '(?<ops>.*)'}, metrics: [{name: 'ops', better: 'higher'}]}], 'plain'),
		complete: true,
		durationSeconds: 1,
		...extra,
	};
}
