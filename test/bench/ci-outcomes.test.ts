// `pvrun bench --matrix FILE` and `--compare` (src/bench/ci.ts) where no guest
// runs a workload, apart from ci.test.ts (the serial group: it compares runs'
// speeds) so that these run beside other files: a boot that cannot come up is
// started once more, then skipped, and the run goes on; a time limit that leaves
// no room; the gate of earlier results, running nothing.
import fs from 'node:fs';
import path from 'node:path';
import {Ajv} from 'ajv';
import {execa} from 'execa';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';
import {fakeRun} from '../helpers/bench-run.js';
import {privateTmpdir} from '../helpers/run-dirs.js';

const validate = new Ajv({allErrors: true}).compile(
	JSON.parse(fs.readFileSync(path.join(packageRoot, 'bench', 'schema', 'result.schema.json'), 'utf8')) as object,
);

t.test('a boot that fails is started once more, then skipped with its reason; the run goes on and exits 1', async (t) => {
	const {tmp: dir} = privateTmpdir(t, 'pvrun-ci-fail-');
	fs.writeFileSync(path.join(dir, 'vmlinuz'), 'not a kernel\n');
	fs.writeFileSync(path.join(dir, 'initrd'), '');
	fs.writeFileSync(
		path.join(dir, 'bench.json'),
		JSON.stringify({
			format: 'pvrun-matrix/1',
			name: 'broken',
			repetitions: 1,
			image: {kernel: 'vmlinuz', initrd: 'initrd'},
			workloads: [{name: 'w', command: 'true', result: {regex: 'x=(?<x>\\d+)'}, metrics: [{name: 'x', better: 'higher'}]}],
			scenarios: [{name: 's', vcpus: 1}],
			configs: [
				{name: 'plain', kind: 'plain'},
				{name: 'static', kind: 'static'},
			],
		}),
	);
	const out = path.join(dir, 'out');
	const r = await execa(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'main.js'), 'bench', '--matrix', path.join(dir, 'bench.json'), '--out', out], {
		env: {NODE_OPTIONS: ''},
		stdin: 'ignore',
		reject: false,
		timeout: 60_000,
	});
	t.equal(r.exitCode, 1, 'exit 1');
	const result = JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8')) as {failures: Array<{config: string; error: string}>; samples: unknown[]};
	t.same(
		result.failures.map((f) => f.config),
		['plain', 'plain', 'static', 'static'],
		'each configuration booted twice, and the second still ran after the first failed',
	);
	t.match(result.failures[0]?.error, /QEMU exited|exited before|did not show/, `a reason: ${result.failures[0]?.error}`);
	t.match(String(r.stderr), /starting it again/, 'the first failure says it starts the boot again');
	t.match(String(r.stdout), '### Failures');
	t.ok(validate(result), 'result.json is valid');
});

t.test('the time limit skips the boots that would not fit, and says so', async (t) => {
	const {tmp: dir} = privateTmpdir(t, 'pvrun-ci-limit-');
	const out = path.join(dir, 'out');
	const r = await execa(
		process.execPath,
		[
			path.join(packageRoot, 'dist', 'cli', 'main.js'),
			'bench',
			'--matrix',
			path.join(packageRoot, 'docs', 'examples', 'ci', 'bench.json'),
			'--out',
			out,
			'--time-limit',
			'0.5',
			'--reps',
			'1',
		],
		{env: {NODE_OPTIONS: ''}, stdin: 'ignore', reject: false, timeout: 60_000},
	);
	const result = JSON.parse(fs.readFileSync(path.join(out, 'result.json'), 'utf8')) as {
		complete: boolean;
		skipped: Array<{reason: string}>;
		samples: unknown[];
	};
	t.equal(result.complete, false, 'incomplete');
	t.equal(result.skipped.length, 2, 'both boots skipped: the run spent its half second recording the host');
	t.match(result.skipped[0]?.reason, /^time limit of 0\.5 s \(\d+ s used\)$/);
	t.match(String(r.stderr), /skipped rep 1\/1, scenario crowded, plain: time limit of 0\.5 s/);
	t.equal(r.exitCode, 1, 'no results at all: exit 1');
	t.ok(validate(result), 'result.json is valid');
});

t.test('--compare: the gate and reports of earlier results, running nothing', async (t) => {
	const {tmp: dir} = privateTmpdir(t, 'pvrun-ci-compare-');
	const result = (ops: number[]) => fakeRun({plain: ops});
	const old = path.join(dir, 'old.json');
	const now = path.join(dir, 'new.json');
	fs.writeFileSync(old, JSON.stringify(result([100, 101, 99])));
	fs.writeFileSync(now, JSON.stringify(result([80, 81, 79])));
	const compare = (...args: string[]) =>
		execa(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'main.js'), 'bench', '--compare', now, '--baseline', old, ...args], {
			env: {NODE_OPTIONS: ''},
			stdin: 'ignore',
			reject: false,
		});
	const strict = await compare('--junit', path.join(dir, 'j.xml'));
	t.equal(strict.exitCode, 1, '20 % slower, beyond the default 5 %: exit 1');
	t.match(String(strict.stdout), '— ❌ gate failed: 1 regression');
	t.match(fs.readFileSync(path.join(dir, 'j.xml'), 'utf8'), 'failures="1"');
	const loose = await compare('--threshold', '25');
	t.equal(loose.exitCode, 0, 'within a 25 % threshold: exit 0');
	t.match(String(loose.stdout), '— ✅ gate passed');
	t.same(JSON.parse(fs.readFileSync(now, 'utf8')), result([80, 81, 79]), 'the result compared is left as it was');
});
