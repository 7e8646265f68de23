// `pvrun bench --matrix FILE`, end to end: run the matrix, gate it against a
// baseline, write result.json, summary.md and (if asked) JUnit XML and a CI
// summary page, print the summary, and give the exit status CI acts on:
// 0 all ran and the gate (if any) passed; 1 the gate found a regression or a
// workload failed (after one more start of its boot). And the same gate and
// reports for a result made earlier (--compare). docs/ci.md.
import fs from 'node:fs';
import path from 'node:path';
import {createProgress, type Progress} from '../util/progress.js';
import {gate, loadRunResult, type GateOptions} from './gate.js';
import type {LoadedMatrix} from './matrix-file.js';
import {runMatrix, type RunMatrixOptions} from './run-matrix.js';
import {runJunit, runMarkdown} from './run-report.js';
import type {RunResult} from './run-result.js';

export interface CiOptions extends RunMatrixOptions {
	matrix: LoadedMatrix;
	baseline?: string;
	junit?: string;
	/** Append the Markdown summary to this file (a CI job's summary page). */
	summary?: string;
	gate: GateOptions;
}

/** Run, gate, report; resolves to the exit status. */
export async function benchMatrixFile(options: CiOptions, progress: Progress = createProgress('pvrun bench')): Promise<number> {
	// The baseline is read first: a wrong path is an error before an hour of benchmarking.
	const baseline = options.baseline !== undefined ? loadRunResult(options.baseline) : undefined;
	const {result, out} = await runMatrix(options, progress);
	if (baseline && options.baseline !== undefined) result.gate = gate(result, baseline, options.baseline, options.gate);
	return report(result, out, options, progress);
}

/**
 * `pvrun bench --compare NEW.json --baseline OLD.json`: the gate and the reports of a run made
 * earlier (elsewhere, or to try another threshold), without running anything; NEW.json is left
 * as it is. Resolves to the exit status.
 */
export function compareResults(
	file: string,
	options: Omit<CiOptions, 'matrix'> & {baseline: string},
	progress: Progress = createProgress('pvrun bench'),
): number {
	const baseline = loadRunResult(options.baseline);
	const result = loadRunResult(file, 'result');
	result.gate = gate(result, baseline, options.baseline, options.gate);
	return report(result, undefined, options, progress);
}

/** Write (into `out`, when the run is this process's) and print the reports; the exit status. */
function report(result: RunResult, out: string | undefined, options: Omit<CiOptions, 'matrix'>, progress: Progress): number {
	const markdown = runMarkdown(result);
	const written: string[] = [];
	if (out !== undefined) {
		fs.writeFileSync(path.join(out, 'result.json'), `${JSON.stringify(result, null, 1)}\n`);
		fs.writeFileSync(path.join(out, 'summary.md'), markdown);
		written.push('result.json', 'summary.md');
	}
	if (options.junit !== undefined) {
		fs.mkdirSync(path.dirname(path.resolve(options.junit)), {recursive: true});
		fs.writeFileSync(options.junit, runJunit(result));
		written.push(path.resolve(options.junit));
	}
	if (options.summary !== undefined) fs.appendFileSync(options.summary, markdown);
	process.stdout.write(markdown);
	if (written.length) progress.info(`results: ${out ?? ''} (${written.join(', ')})`);
	for (const w of result.gate?.warnings ?? []) progress.info(`warning: ${w}`);
	const failed = result.failures.filter((f) => !f.retried);
	if (!result.complete) progress.info(`incomplete: ${result.skipped.length} boot(s) skipped: ${result.skipped[0]?.reason ?? ''}`);
	if (result.gate && !result.gate.passed) {
		progress.info(`gate failed: ${result.gate.regressions} regression(s) against ${result.gate.baseline.file}`);
		return 1;
	}
	if (failed.length) {
		progress.info(
			`${failed.length} run(s) failed: ${failed[0]?.scenario}, ${failed[0]?.config}${failed[0]?.workload ? `, ${failed[0].workload}` : ''}: ${failed[0]?.error ?? ''}`,
		);
		return 1;
	}
	if (!result.samples.length) {
		progress.info('no results');
		return 1;
	}
	return 0;
}
