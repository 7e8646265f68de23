// The benchmark matrix: its parsing and ordering as units, and the
// quick mode end to end (the summary and report: matrix-report.test.ts) as the smoke run of `make test` (real guests, all three
// configurations and scenarios; no timing assertions). Its JSON must validate
// against bench/schema/matrix.schema.json.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {Ajv} from 'ajv';
import {execa} from 'execa';
import t from 'tap';
import {parseResultLine, rotation, scenarioIds, scenarios, workloadCommand, type MatrixResult} from '../../src/bench/matrix.js';
import {pvrunCommand} from '../../src/guest/boot.js';
import {packageRoot} from '../../src/util/paths.js';

const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'bench', 'schema', 'matrix.schema.json'), 'utf8')) as object;
const validate = new Ajv({allErrors: true}).compile(schema);

t.test('result lines: pvwork JSON and pvhint key=value; anything else is ignored', async (t) => {
	t.same(parseResultLine('pvwork-result {"workload":"poll","cpu":0,"iterPerSec":100.5,"burnerIterPerSec":50,"x":"s"}'), {
		workload: 'poll',
		values: {cpu: 0, iterPerSec: 100.5, burnerIterPerSec: 50, vmWorkPerSec: 150.5},
	});
	t.same(parseResultLine('pvhint: vcpu=1 n=40 timeouts=0 pin_p50_us=210.5 pin_p99_us=900.0'), {
		workload: 'hintlat',
		values: {n: 40, timeouts: 0, pinP50Us: 210.5, pinP99Us: 900},
	});
	for (const junk of [
		'pvwork-result {',
		'pvwork-result {"workload":"rm -rf"}',
		'pvwork-result 5',
		'[ 1.0] pvwork-result {"workload":"poll"}',
		'pvhint: attack done',
	])
		t.equal(parseResultLine(junk), undefined, junk);
});

t.test('configurations rotate across repetitions', async (t) => {
	t.same(
		[0, 1, 2, 3].map((rep) => rotation(rep, ['plain', 'static', 'pvrun'])),
		[
			['plain', 'static', 'pvrun'],
			['static', 'pvrun', 'plain'],
			['pvrun', 'plain', 'static'],
			['plain', 'static', 'pvrun'],
		],
	);
	t.same(rotation(1), ['static', 'pvrun', 'pvrun-cs', 'plain'], 'by default, every configuration');
});

t.test('workload commands fit the scenario and contain no spaces', async (t) => {
	t.equal(workloadCommand('poll', scenarios.a, 10, 'plain'), 'pvwork,poll,-c,0,-s,10,-b,3');
	t.equal(workloadCommand('pingpong', scenarios.b, 10, 'plain'), 'pvwork,pingpong,-a,0,-c,1,-s,10,-b,0');
	t.equal(workloadCommand('hintlat', scenarios.a, 2, 'plain'), undefined, 'plain QEMU answers no hints');
	t.ok(workloadCommand('hintlat', scenarios.a, 2, 'pvrun'));
});

// The whole file gets the quick run's 8 minutes: tap's 180 s per file (package.json) is the
// stricter bound, and the quick run alone took 172-177 s on a slow machine.
t.setTimeout(8 * 60_000);

t.test('pvrun bench --quick: every scenario, configuration and workload; valid JSON; nothing left behind', async (t) => {
	t.setTimeout(8 * 60_000);
	const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-matrix-test-'));
	// The bench gets a temporary directory of its own, so that what it leaves is told apart
	// from the files of tests that run beside it (make test runs this file in parallel).
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-matrix-tmp-'));
	t.teardown(() => {
		fs.rmSync(out, {recursive: true, force: true});
		fs.rmSync(tmp, {recursive: true, force: true});
	});
	const runs = new Set<string>();
	const watcher = fs.watch(tmp, (_event, name) => {
		if (name !== null && name.startsWith('pvrun-')) runs.add(name);
	});
	t.teardown(() => watcher.close());
	const [node = 'node', ...cli] = pvrunCommand();
	const started = performance.now();
	const run = await execa(node, [...cli, 'bench', '--quick', '--out', out], {
		reject: false,
		timeout: 7 * 60_000,
		stdin: 'ignore',
		env: {TMPDIR: tmp},
	});
	watcher.close();
	t.comment(`pvrun bench --quick: ${((performance.now() - started) / 1000).toFixed(0)} s`);
	t.equal(run.exitCode, 0, `exit 0 (stderr: ${run.stderr.split('\n').slice(-3).join(' | ')})`);
	const result = JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as MatrixResult;
	t.ok(validate(result), `matrix.json validates against the schema: ${JSON.stringify(validate.errors?.slice(0, 3) ?? [])}`);
	t.same(result.failures, [], 'no boot failed');
	for (const sc of scenarioIds)
		for (const config of ['plain', 'static', 'pvrun'] as const)
			for (const w of ['poll', 'pingpong', 'sleeper', 'locks'] as const)
				t.ok(
					result.samples.some((x) => x.scenario === sc && x.config === config && x.workload === w && !x.warmup),
					`${sc}/${config}/${w} measured`,
				);
	t.ok(
		result.samples.some((x) => x.workload === 'hintlat' && x.config === 'pvrun'),
		'hint round trips measured under pvrun',
	);
	const md = fs.readFileSync(path.join(out, 'matrix.md'), 'utf8');
	t.match(md, /## Scenario a:/);
	t.match(md, /\| poll iterations \(\/s\) \|/);
	for (const sc of scenarioIds) t.match(fs.readFileSync(path.join(out, `matrix-${sc}.svg`), 'utf8'), /^<svg[^>]*>[\s\S]*<\/svg>$/, `matrix-${sc}.svg`);
	const runDirs = [...runs].filter((name) => /^pvrun-\d+-[0-9a-f]+$/.test(name));
	t.ok(runDirs.length >= scenarioIds.length, `the run directory of each pvrun VM was seen (${runDirs.join(', ')})`);
	t.same(fs.readdirSync(tmp), [], 'no run or work directory left');
	t.same(
		runDirs.filter((name) => fs.existsSync(path.join('/dev/shm', name))),
		[],
		'no shared-memory file left',
	);
});
