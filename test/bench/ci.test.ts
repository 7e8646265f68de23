// `pvrun bench --matrix FILE` end to end (src/bench/ci.ts), through the
// benchmark step of docs/ci.md's GitHub Actions example, run as it stands there
// (bash, `sudo` and `pvrun` on PATH as shims) on real guests: a tiny matrix
// (a checksum loop under plain QEMU, 3 repetitions: boots are what the suite's
// time goes on) run once without a baseline, then with that run as baseline
// (the gate passes), then with the workload made eight times slower (the gate
// fails: exit 1, a JUnit failure, the summary says so). Under TCG a loop of
// 0.2 s differed by up to 40 % from one boot to the next (and failed the pass
// case); of 0.7 s, by about 10 %. The gate looks for changes beyond 30 %, so
// that a pass does not depend on this machine's speed from one minute to the
// next (18 % seen), with 3 repetitions (2 once missed six times slower; 3 missed four
// times slower once, when the baseline's repetitions varied by 44 %). Then
// the shipped example under pvrun with options. What takes no working guest:
// ci-outcomes.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import {Ajv} from 'ajv';
import {execa} from 'execa';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';
import {privateTmpdir} from '../helpers/run-dirs.js';

const validate = new Ajv({allErrors: true}).compile(
	JSON.parse(fs.readFileSync(path.join(packageRoot, 'bench', 'schema', 'result.schema.json'), 'utf8')) as object,
);

/** The `run: |` block of the step named `benchmark` in docs/ci.md's workflow. */
export function benchmarkStep(markdown: string): string {
	const lines = markdown.split('\n');
	const at = lines.findIndex((l) => /^\s*- name: benchmark$/.test(l));
	const run = lines.findIndex((l, i) => i > at && /^\s*run: \|$/.test(l));
	if (at < 0 || run < 0) throw new Error('docs/ci.md has no benchmark step with a run block');
	const indent = (lines[run + 1] ?? '').search(/\S/);
	const body: string[] = [];
	for (const l of lines.slice(run + 1)) {
		if (l.trim() && l.search(/\S/) < indent) break;
		body.push(l.slice(indent));
	}
	return body.join('\n');
}

t.test("docs/ci.md's benchmark step: a first run, a passing gate, a failing one", async (t) => {
	const step = benchmarkStep(fs.readFileSync(path.join(packageRoot, 'docs', 'ci.md'), 'utf8'));
	t.match(step, 'pvrun bench --matrix ci/bench.json', 'the step runs the matrix');
	const {tmp: dir, env: runEnv} = privateTmpdir(t, 'pvrun-ci-');
	const bin = path.join(dir, 'bin');
	fs.mkdirSync(bin);
	fs.mkdirSync(path.join(dir, 'ci'));
	fs.writeFileSync(path.join(bin, 'sudo'), '#!/bin/sh\nexec "$@"\n', {mode: 0o755});
	fs.writeFileSync(
		path.join(bin, 'pvrun'),
		`#!/bin/sh\nexec env -u NODE_OPTIONS "${process.execPath}" "${path.join(packageRoot, 'dist', 'cli', 'main.js')}" "$@"\n`,
		{mode: 0o755},
	);
	const work = fs.readFileSync(path.join(packageRoot, 'docs', 'examples', 'ci', 'work.sh'), 'utf8');
	fs.writeFileSync(path.join(dir, 'ci', 'work.sh'), work);
	// The matrix with the checksum loop's rounds (the cell is the same whatever the command).
	const matrix = (rounds: number) =>
		fs.writeFileSync(
			path.join(dir, 'ci', 'bench.json'),
			JSON.stringify({
				format: 'pvrun-matrix/1',
				name: 'tiny',
				repetitions: 3,
				gate: {threshold: 30},
				workloads: [
					{
						name: 'checksum',
						command: `sh {files}/work.sh ${rounds}`,
						files: [{from: 'work.sh'}],
						timeoutSeconds: 60,
						result: {regex: 'checksums=(?<checksums>[0-9.]+)/s'},
						metrics: [{name: 'checksums', unit: '/s', better: 'higher'}],
					},
				],
				scenarios: [{name: 'quiet', vcpus: 2}],
				configs: [{name: 'plain', kind: 'plain'}],
			}),
		);
	matrix(50);
	const summary = path.join(dir, 'summary.md');
	const runStep = async () => {
		fs.rmSync(path.join(dir, 'bench-out'), {recursive: true, force: true});
		fs.rmSync(summary, {force: true});
		const r = await execa('bash', ['-e', '-c', step], {
			cwd: dir,
			env: {...runEnv, PATH: `${bin}:${process.env['PATH'] ?? ''}`, GITHUB_STEP_SUMMARY: summary},
			stdin: 'ignore',
			reject: false,
			timeout: 240_000,
		});
		const result = JSON.parse(fs.readFileSync(path.join(dir, 'bench-out', 'result.json'), 'utf8')) as {samples: unknown[]; gate?: {passed: boolean}};
		return {
			code: r.exitCode,
			stderr: String(r.stderr),
			result,
			junit: fs.readFileSync(path.join(dir, 'bench-out', 'junit.xml'), 'utf8'),
			summary: fs.readFileSync(summary, 'utf8'),
		};
	};

	const first = await runStep();
	t.equal(first.code, 0, `a first run, no baseline: exit 0 (${first.stderr.split('\n').slice(-3).join(' | ')})`);
	t.equal(first.result.samples.length, 3, '3 repetitions');
	t.ok(validate(first.result), `result.json is valid: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
	t.match(first.summary, '## pvrun bench: tiny — no baseline given', 'the summary page gets the summary');
	t.match(first.junit, /<testsuite name="tiny\.quiet" tests="1" failures="0"/, 'JUnit: a case per workload and configuration');
	fs.cpSync(path.join(dir, 'bench-out'), path.join(dir, 'baseline'), {recursive: true});

	const same = await runStep();
	t.equal(same.code, 0, `the same workload against it: exit 0 (${same.stderr.split('\n').slice(-3).join(' | ')})`);
	t.equal(same.result.gate?.passed, true, 'the gate passed');
	t.match(same.summary, '— ✅ gate passed');
	t.match(same.junit, /<testsuite name="tiny\.quiet" tests="1" failures="0"/, 'JUnit: a case per gate check');

	// Eight times slower in the same time: half the rounds, each eight times the work.
	fs.writeFileSync(path.join(dir, 'ci', 'work.sh'), work.replace('work=${WORK:-1}', 'work=${WORK:-8}'));
	matrix(25);
	const slower = await runStep();
	t.equal(slower.code, 1, 'eight times slower: exit 1');
	t.equal(slower.result.gate?.passed, false);
	t.equal(slower.summary.split('\n')[0], '## pvrun bench: tiny — ❌ gate failed: 1 regression', 'the summary says so');
	t.match(slower.junit, /<testsuite name="tiny\.quiet" tests="1" failures="1"/, 'JUnit: a failed case');
	t.match(slower.junit, /<failure message="plain −\d+ % \(p (&lt; )?[\d.]+\)" type="regression"\/>/, 'naming the cell, its change and p-value');
	t.match(slower.stderr, 'gate failed: 1 regression(s) against baseline/result.json');
});

t.test('the shipped example under pvrun with options: its scenario, its files, a result', async (t) => {
	const {tmp: dir, env: runEnv} = privateTmpdir(t, 'pvrun-ci-example-');
	const matrix = JSON.parse(fs.readFileSync(path.join(packageRoot, 'docs', 'examples', 'ci', 'bench.json'), 'utf8')) as {configs: unknown[]};
	matrix.configs = [{name: 'pvrun-cs', kind: 'pvrun', args: ['--pv-cs', 'observe']}];
	fs.writeFileSync(path.join(dir, 'bench.json'), JSON.stringify(matrix));
	fs.copyFileSync(path.join(packageRoot, 'docs', 'examples', 'ci', 'work.sh'), path.join(dir, 'work.sh'));
	const out = path.join(dir, 'out');
	const r = await execa(
		process.execPath,
		[path.join(packageRoot, 'dist', 'cli', 'main.js'), 'bench', '--matrix', path.join(dir, 'bench.json'), '--out', out, '--reps', '1'],
		{
			env: {...runEnv, NODE_OPTIONS: ''},
			stdin: 'ignore',
			reject: false,
			timeout: 120_000,
		},
	);
	t.equal(r.exitCode, 0, `exit 0 (${String(r.stderr).split('\n').slice(-2).join(' | ')})`);
	const result = JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8')) as {
		samples: Array<{config: string; values: Record<string, number>; hostSpeed?: number}>;
		scenarios: Array<{hostHogs: number; hostCpus: number[]; overcommit: number}>;
	};
	t.equal(result.samples[0]?.config, 'pvrun-cs');
	t.ok(
		(result.samples[0]?.values['checksums'] ?? 0) > 0 && (result.samples[0]?.values['seconds'] ?? 0) > 0,
		`both metrics: ${JSON.stringify(result.samples[0]?.values)}`,
	);
	t.ok((result.samples[0]?.hostSpeed ?? 0) > 0, 'the host speed before the boot');
	const scenario = result.scenarios[0];
	t.equal(scenario?.hostHogs, scenario?.hostCpus.length, 'one busy process per host CPU');
	t.equal(scenario?.overcommit, scenario ? Math.round(((2 + scenario.hostHogs) / scenario.hostCpus.length) * 100) / 100 : -1, 'the overcommit counts them');
	t.ok(validate(result), 'result.json is valid');
});
