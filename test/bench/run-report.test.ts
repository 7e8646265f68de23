// A matrix file's reports (src/bench/run-report.ts) from a made-up run with a
// gate: the Markdown summary's verdicts and warnings, JUnit XML's counts and
// failures, and the whole result against bench/schema/result.schema.json.
import fs from 'node:fs';
import path from 'node:path';
import {Ajv} from 'ajv';
import t from 'tap';
import {defaultGate, gate} from '../../src/bench/gate.js';
import {scenarioRecord, summarizeRun} from '../../src/bench/run-matrix.js';
import {num, runJunit, runMarkdown} from '../../src/bench/run-report.js';
import type {RunResult, RunSample} from '../../src/bench/run-result.js';
import {packageRoot} from '../../src/util/paths.js';

const validate = new Ajv({allErrors: true}).compile(
	JSON.parse(fs.readFileSync(path.join(packageRoot, 'bench', 'schema', 'result.schema.json'), 'utf8')) as object,
);

function run(values: Record<string, number[]>): RunResult {
	const samples: RunSample[] = [];
	for (const [config, vs] of Object.entries(values))
		for (const [rep, ops] of vs.entries()) samples.push({scenario: 'busy', config, rep, order: 0, workload: 'build', values: {ops, secs: 1000 / ops}});
	const workload = {
		name: 'build',
		command: 'x',
		result: {regex: '(?<ops>.*)(?<secs>.*)'},
		metrics: [
			{name: 'ops', label: 'files compiled', unit: '/s', better: 'higher' as const},
			{name: 'secs', label: 'time taken', unit: 's', better: 'lower' as const},
		],
	};
	return {
		schema: 'pvrun-bench-run/1',
		date: '2026-12-06T10:00:00.000Z',
		matrix: {file: '/ci/bench.json', name: 'proj', title: "the project's build", sha256: 'a'.repeat(64)},
		environment: {
			host: 'runner',
			cpus: 2,
			cpuModel: 'Xeon',
			kernel: '6.1.0',
			qemu: 'QEMU emulator version 7.2',
			accel: 'tcg',
			pvrun: '0.1.0',
			commit: 'abc1234',
			node: 'v20.19.0',
			loadBefore: [0.5, 0.4, 0.3],
			busyBefore: 0.05,
			during: {samples: 30, othersMedian: 0.02, othersMax: 0.1, stealMedian: 0, loadMax: 4.2},
		},
		options: {reps: 3, scenarios: ['busy'], workloads: ['build'], configs: Object.keys(values), baselineConfig: 'plain'},
		scenarios: [scenarioRecord({name: 'busy', vcpus: 4, hostHogs: 'cpus'}, [0, 1])],
		samples,
		failures: [],
		skipped: [],
		summary: summarizeRun(samples, [workload], 'plain'),
		complete: true,
		durationSeconds: 95.3,
	};
}

t.test('numbers in tables', async (t) => {
	t.same([num(0), num(1.234), num(123.4), num(12_345), num(2_500_000), num(-0.5)], ['0', '1.23', '123', '12.3k', '2.50M', '-0.500']);
});

t.test('without a baseline: the table of medians and same-run ratios', async (t) => {
	const r = run({plain: [100, 110, 90], pvrun: [200, 190, 210]});
	t.ok(validate(r), `valid: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
	const md = runMarkdown(r);
	t.match(md, "## pvrun bench: the project's build — no baseline given");
	t.match(md, '4 vCPUs on 2 host CPUs, 2 busy host processes, 3x overcommitted.');
	t.match(md, '| metric | plain | pvrun | pvrun / plain |');
	t.match(md, '| files compiled (/s) ↑ | 100 ±10% | 200 ±5% | 2.00x |');
	t.notMatch(md, 'vs baseline');
	const xml = runJunit(r);
	t.match(xml, /<testsuites name="pvrun bench proj" tests="2" failures="0"/, 'a case per workload and configuration that ran');
	t.match(xml, '<testcase classname="proj.busy.build" name="runs under pvrun"/>');
});

t.test('with a baseline: verdicts, warnings, JUnit failures; the whole result valid', async (t) => {
	const baseline = run({plain: [100, 101, 99], pvrun: [200, 204, 198]});
	const now = run({plain: [100, 102, 99], pvrun: [100, 101, 102]});
	now.failures.push({scenario: 'busy', config: 'plain', rep: 1, error: 'guest console did not show ready', output: ['[ 1.0] boot'], retried: true});
	now.skipped.push({scenario: 'busy', config: 'pvrun', rep: 3, reason: 'time limit of 600 s (610 s used)'});
	now.complete = false;
	now.gate = gate(now, baseline, 'old/result.json', defaultGate);
	t.ok(validate(now), `valid: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
	const md = runMarkdown(now);
	t.match(md, "## pvrun bench: the project's build — ❌ gate failed: 4 regressions");
	t.match(
		md,
		'Compared with old/result.json (2026-12-06 10:00, abc1234): a cell fails when a one-sided Welch t-test says it is worse by more than 5 % at p < 0.05.',
	);
	t.match(md, /\| files compiled \(\/s\) ↑ \| 100 ±2% \| 101 ±1% \| 1\.00x \| ❌ pvrun −49 % \(p < 0\.001\)<br>❌ pvrun ratio −50 % \(p < 0\.001\) \|/);
	t.match(md, '> ⚠️ incomplete: 1 boot(s) skipped (time limit of 600 s (610 s used))');
	t.match(md, '- busy, plain, repetition 2: guest console did not show ready (started again: it then ran)');
	const xml = runJunit(now);
	t.match(xml, /<testsuites name="pvrun bench proj" tests="\d+" failures="4"/);
	t.match(xml, '<testcase classname="proj.busy.build" name="ops [pvrun / plain]">');
	t.match(xml, '<failure message="pvrun ratio −50 % (p &lt; 0.001)" type="regression"/>');
	t.match(xml, /<testcase classname="proj.busy" name="pvrun, repetition 4">\s*<skipped\/>/);
	t.notMatch(xml, 'runs under plain', 'a boot that ran when started again is no failure');
});
