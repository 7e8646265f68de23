// The benchmark matrix: its parsing, ordering and ceilings as units, and the
// quick mode end to end (the summary and report: matrix-report.test.ts) as the
// smoke run of `make test` (real guests: every configuration in scenario a,
// plain and pvrun in b and c; no timing assertions). Its JSON must validate
// against bench/schema/matrix.schema.json.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {Ajv} from 'ajv';
import {execa} from 'execa';
import t from 'tap';
import {
	ceilingOf,
	exclusiveClashes,
	exclusiveCpus,
	pairSamples,
	parseResultLine,
	quickOptions,
	rotation,
	runsIn,
	scenarios,
	workloadCommand,
	workloadNames,
	type MatrixResult,
} from '../../src/bench/matrix.js';
import {ownCpus} from '../../src/host/cpus.js';
import {setThreadAffinity} from '../../src/host/libc.js';
import {pvrunCommand} from '../../src/guest/boot.js';
import {packageRoot} from '../../src/util/paths.js';
import {privateTmpdir} from '../helpers/run-dirs.js';

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
	t.same(
		parseResultLine(
			'pvwork-result {"workload":"uspin","threads":4,"runs":[{"lock":"spin","workUs":10,"opsPerSec":5.5,"p99WaitUs":3},' +
				'{"lock":"pvcs","workUs":1,"opsPerSec":7},{"lock":"../x","workUs":1,"opsPerSec":1},{"lock":"mutex","workUs":"1","opsPerSec":1},7],"pvcsActive":1}',
		),
		{workload: 'uspin', values: {threads: 4, pvcsActive: 1, 'spin-10.opsPerSec': 5.5, 'spin-10.p99WaitUs': 3, 'pvcs-1.opsPerSec': 7}},
		'uspin: a run per lock and length; a run that names no lock and length is left out',
	);
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
	t.same(rotation(1), ['static', 'pvrun', 'pvrun-cs', 'pvrun-act', 'ceiling', 'plain'], 'by default, every configuration');
});

t.test('workload commands fit the scenario and contain no spaces', async (t) => {
	t.equal(workloadCommand('poll', scenarios.a, 10, 'plain'), 'pvwork,poll,-c,0,-s,10,-b,3');
	t.equal(workloadCommand('pingpong', scenarios.b, 10, 'plain'), 'pvwork,pingpong,-a,0,-c,1,-s,10,-b,0');
	t.equal(workloadCommand('hintlat', scenarios.a, 2, 'plain'), undefined, 'plain QEMU answers no hints');
	t.equal(workloadCommand('poll', scenarios.f, 10, 'plain'), 'pvwork,poll,-c,0,-s,10,-b,63', 'a big VM: every other vCPU busy');
	t.ok(workloadCommand('hintlat', scenarios.e, 2, 'pvrun'), 'and the hint latency');
	t.same(
		workloadNames.filter((w) => workloadCommand(w, scenarios.f, 2, 'pvrun') !== undefined),
		['poll', 'hintlat'],
		'nothing else in a big VM',
	);
	t.ok(workloadCommand('hintlat', scenarios.a, 2, 'pvrun'));
	t.ok(workloadCommand('hintlat', scenarios.a, 2, 'pvrun-act'));
	t.equal(workloadCommand('uspin', scenarios.a, 3, 'plain'), 'pvwork,uspin,-t,4,-l,spin+spin-cs+mutex+pvcs,-w,1+10+50,-s,3', 'every lock and length');
	t.equal(workloadCommand('uspin', scenarios.a, 1, 'plain', true), 'pvwork,uspin,-t,4,-l,spin+pvcs,-w,10,-s,1', 'quick: one length, two locks');
	t.equal(
		workloadCommand('uspin', scenarios.d, 3, 'ceiling', false, 1),
		'pvwork,uspin,-t,1,-l,spin+spin-cs+mutex+pvcs,-w,1+10+50,-s,3',
		"the ceiling's threads",
	);
	t.equal(workloadCommand('klock', scenarios.d, 3, 'pvrun-act'), 'pvwork,klock,-t,4,-s,3');
	for (const w of ['uspin', 'klock'] as const)
		t.equal(workloadCommand(w, scenarios.b, 3, 'plain'), undefined, `${w}: not in a guest with no more vCPUs than CPUs`);
	for (const w of ['poll', 'pingpong', 'sleeper', 'locks', 'hintlat'] as const)
		t.equal(workloadCommand(w, scenarios.d, 3, 'pvrun'), undefined, `${w}: not in scenario d`);
});

t.test('pairSamples: one sample per workload with each VM’s values, their fairness, and the conflicts seen', async (t) => {
	const sample = (v: Record<string, number>, warmup = false) => ({
		scenario: 'g' as const,
		config: 'pvrun' as const,
		rep: 0,
		order: 0,
		workload: 'poll' as const,
		warmup,
		values: v,
	});
	const merged = pairSamples(
		[
			[sample({iterPerSec: 10}, true), sample({iterPerSec: 300, vmWorkPerSec: 400})],
			[sample({iterPerSec: 12}, true), sample({iterPerSec: 100, vmWorkPerSec: 350})],
		],
		{samples: 40, conflicts: 0},
	);
	t.equal(merged.length, 2);
	t.same(merged[0]?.values, {'vm1.iterPerSec': 10, 'vm2.iterPerSec': 12, jain: 0.9918}, 'the warm-up: no conflicts counted');
	t.same(merged[1]?.values, {
		'vm1.iterPerSec': 300,
		'vm1.vmWorkPerSec': 400,
		'vm2.iterPerSec': 100,
		'vm2.vmWorkPerSec': 350,
		jain: 0.8,
		exclusiveConflicts: 0,
		exclusiveSamples: 40,
	});
	t.same(exclusiveCpus(process.pid), new Set(), 'a process without vCPU threads has none');
});

t.test('exclusiveClashes: a host CPU that a vCPU thread of two processes has as its only CPU', async (t) => {
	// Stand-ins for two QEMUs: a shell named as a vCPU thread, on CPU 1 alone.
	const vcpu = () => spawn('taskset', ['-c', '1', 'sh', '-c', 'printf "CPU 0/TCG" > /proc/$$/comm; while :; do sleep 1; done'], {stdio: 'ignore'});
	const one = vcpu();
	const two = vcpu();
	t.teardown(() => void one.kill('SIGKILL'));
	t.teardown(() => void two.kill('SIGKILL'));
	const pids = [one.pid ?? 0, two.pid ?? 0];
	const named = () => pids.every((pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('CPU 0/'));
	for (const until = Date.now() + 5000; Date.now() < until && !named();) await new Promise((r) => setTimeout(r, 10));
	t.same(exclusiveClashes(pids), new Set([1]), 'CPU 1 is a vCPU’s own in both');
	setThreadAffinity(pids[1] ?? 0, [0, 1]);
	t.same(exclusiveClashes(pids), new Set(), 'not once the second has both CPUs');
});

t.test("runsIn: the runs of its seconds a command makes, for the boot's time budget", async (t) => {
	t.equal(runsIn(workloadCommand('uspin', scenarios.a, 10, 'plain') ?? ''), 12, 'uspin: four locks, three lengths');
	t.equal(runsIn(workloadCommand('uspin', scenarios.a, 1, 'plain', true) ?? ''), 2, 'the quick run: two locks, one length');
	t.equal(runsIn(workloadCommand('poll', scenarios.a, 10, 'plain') ?? ''), 1);
});

t.test('the ceiling: no overcommit for lock-bound workloads, the oracle placement for pinned ones', async (t) => {
	const cpus = [0, 1];
	t.same(ceilingOf('uspin', scenarios.a, cpus), {kind: 'nooc', vcpus: 2}, 'alone: as many vCPUs as host CPUs');
	t.same(ceilingOf('klock', scenarios.d, cpus), {kind: 'nooc', vcpus: 1}, 'beside a neighbour as busy as the host: half');
	t.same(ceilingOf('poll', scenarios.a, cpus), {
		kind: 'oracle',
		place: [
			{cpus: [0], nice: 0},
			{cpus: [1], nice: 19},
			{cpus: [1], nice: 19},
			{cpus: [1], nice: 19},
		],
	});
	t.same(
		ceilingOf('pingpong', scenarios.b, cpus),
		{
			kind: 'oracle',
			place: [
				{cpus: [0], nice: 0},
				{cpus: [1], nice: 0},
			],
		},
		'a neighbour on the same CPUs: static pinning is the best placement',
	);
	t.equal(ceilingOf('hintlat', scenarios.a, cpus), undefined, 'plain QEMU answers no hints: no ceiling');
});

// The whole file gets the quick run's 8 minutes: tap's 180 s per file (package.json) is the
// stricter bound, and the quick run alone took 172-177 s on a slow machine.
t.setTimeout(8 * 60_000);

t.test('pvrun bench --quick: every scenario, configuration and workload; valid JSON; nothing left behind', async (t) => {
	t.setTimeout(8 * 60_000);
	const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-matrix-test-'));
	t.teardown(() => fs.rmSync(out, {recursive: true, force: true}));
	// make test runs this file in parallel with others.
	const {tmp, env, seen} = privateTmpdir(t, 'pvrun-matrix-tmp-');
	const [node = 'node', ...cli] = pvrunCommand();
	const started = performance.now();
	const run = await execa(node, [...cli, 'bench', '--quick', '--out', out], {
		reject: false,
		timeout: 7 * 60_000,
		stdin: 'ignore',
		env,
	});
	const runDirs = seen();
	t.comment(`pvrun bench --quick: ${((performance.now() - started) / 1000).toFixed(0)} s`);
	t.equal(run.exitCode, 0, `exit 0 (stderr: ${run.stderr.split('\n').slice(-3).join(' | ')})`);
	t.match(run.stderr, /^pvrun bench: results: \/\S+ \(matrix\.json/m, 'the results folder printed as an absolute path');
	const result = JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')) as MatrixResult;
	t.ok(validate(result), `matrix.json validates against the schema: ${JSON.stringify(validate.errors?.slice(0, 3) ?? [])}`);
	t.same(result.failures, [], 'no boot failed');
	for (const sc of quickOptions.scenarios)
		for (const config of quickOptions.scenarioConfigs?.[sc] ?? quickOptions.configs)
			for (const w of workloadNames) {
				const runs =
					config === 'ceiling' ? ceilingOf(w, scenarios[sc], ownCpus()) !== undefined : workloadCommand(w, scenarios[sc], 1, config, true) !== undefined;
				if (runs)
					t.ok(
						result.samples.some((x) => x.scenario === sc && x.config === config && x.workload === w && !x.warmup),
						`${sc}/${config}/${w} measured`,
					);
			}
	const uspin = result.samples.find((x) => x.workload === 'uspin' && x.config === 'pvrun-act');
	t.ok((uspin?.values['pvcs-10.opsPerSec'] ?? 0) > 0, 'uspin: each lock a result of its own');
	t.ok(
		result.samples.some((x) => x.workload === 'hintlat' && x.config === 'pvrun'),
		'hint round trips measured under pvrun',
	);
	const pair = result.samples.find((x) => x.scenario === 'g' && x.config === 'pvrun' && !x.warmup);
	t.ok((pair?.values['vm1.iterPerSec'] ?? 0) > 0 && (pair?.values['vm2.iterPerSec'] ?? 0) > 0, 'scenario g: both VMs measured');
	t.ok((pair?.values['jain'] ?? 0) > 0.5, `and their fairness (Jain ${pair?.values['jain']})`);
	t.ok((pair?.values['exclusiveSamples'] ?? 0) > 0, `the two VMs' vCPU threads sampled (${pair?.values['exclusiveSamples']} times)`);
	t.equal(pair?.values['exclusiveConflicts'], 0, 'never a CPU of its own to a vCPU in both VMs at once (leases)');
	const md = fs.readFileSync(path.join(out, 'matrix.md'), 'utf8');
	t.match(md, /## Scenario a:/);
	t.match(md, /\| poll iterations \(\/s\) \|/);
	for (const sc of quickOptions.scenarios)
		t.match(fs.readFileSync(path.join(out, `matrix-${sc}.svg`), 'utf8'), /^<svg[^>]*>[\s\S]*<\/svg>$/, `matrix-${sc}.svg`);
	t.ok(runDirs.length >= quickOptions.scenarios.length, `the run directory of each pvrun VM was seen (${runDirs.join(', ')})`);
	t.same(fs.readdirSync(tmp), [], 'no run or work directory left');
	t.same(
		runDirs.filter((name) => fs.existsSync(path.join('/dev/shm', name))),
		[],
		'no shared-memory file left',
	);
});
