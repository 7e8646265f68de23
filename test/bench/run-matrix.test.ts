// A matrix file's run (src/bench/run-matrix.ts) in its parts: which workloads
// a boot runs, the guest script and what the host reads back from the console
// (results, failures, timeouts), the rotation, a scenario's overcommit, and the
// summary's same-run ratios. Real boots: ci.test.ts.
import t from 'tap';
import type {WorkloadSpec} from '../../src/bench/matrix-file.js';
import {collect, guestScript, plan, rotate, scenarioRecord, summarizeRun} from '../../src/bench/run-matrix.js';

const checksum: WorkloadSpec = {
	name: 'sum',
	command: 'sh {files}/work.sh -s {seconds} -b {vcpus-1}',
	seconds: 2,
	warmupRuns: 1,
	result: {regex: 'rate=(?<rate>[0-9.]+) took=(?<took>[0-9.]+)'},
	metrics: [
		{name: 'rate', better: 'higher'},
		{name: 'took', better: 'lower'},
	],
};
const onlyBig: WorkloadSpec = {name: 'big', command: 'big', minVcpus: 4, result: {json: ''}, metrics: [{name: 'x', better: 'higher'}]};
const onlyPvrun: WorkloadSpec = {name: 'hint', command: 'hint', configs: ['pvrun'], result: {json: ''}, metrics: [{name: 'x', better: 'higher'}]};

t.test('plan: filters, placeholders, timeouts', async (t) => {
	const p = plan([checksum, onlyBig, onlyPvrun], {name: 's', vcpus: 2}, {name: 'plain', kind: 'plain'});
	t.same(
		p.map((x) => [x.workload.name, x.command, x.timeoutSeconds]),
		[['sum', 'sh /pvrun-bench/files/work.sh -s 2 -b 1', 36]],
	);
	t.same(
		plan([checksum, onlyBig, onlyPvrun], {name: 's', vcpus: 4}, {name: 'pvrun', kind: 'pvrun'}).map((x) => x.workload.name),
		['sum', 'big', 'hint'],
	);
});

t.test('the guest script: hints live first, prepare, each run between markers, under timeout', async (t) => {
	const {files} = guestScript(plan([checksum], {name: 's', vcpus: 2}, {name: 'plain', kind: 'plain'}), 'sleep 1');
	t.same(Object.keys(files).sort(), ['prepare.sh', 'run.sh', 'w0.sh']);
	t.equal(files['w0.sh'], 'sh /pvrun-bench/files/work.sh -s 2 -b 1\n', "the command in a file of its own: no quoting of the user's shell");
	const run = files['run.sh'] ?? '';
	t.match(run, /^#!\/bin\/sh\n/);
	t.match(run, 'command -v pvhint >/dev/null 2>&1 && pvhint live 30000');
	t.ok(run.indexOf('sh /pvrun-bench/prepare.sh') < run.indexOf('begin 0 warmup'), 'prepare before the workloads');
	t.match(run, 'echo "pvrun-bench: begin 0 warmup"\nlimit 36 sh /pvrun-bench/w0.sh\necho "pvrun-bench: end 0 warmup status $?"\n');
	t.match(run, 'echo "pvrun-bench: begin 0 run"\nlimit 36 sh /pvrun-bench/w0.sh\necho "pvrun-bench: end 0 run status $?"\necho "pvrun-bench: done"\n');
});

t.test("collect: the measured run's numbers; failures with their output", async (t) => {
	const planned = plan(
		[checksum, {...checksum, name: 'two', warmupRuns: 0}, {...checksum, name: 'three', warmupRuns: 0}],
		{name: 's', vcpus: 2},
		{name: 'c', kind: 'plain'},
	);
	const ctx = {scenario: {name: 's'}, config: {name: 'c'}, rep: 1, order: 0, planned};
	const lines = [
		'pvrun-bench: begin 0 warmup',
		'rate=1 took=9',
		'pvrun-bench: end 0 warmup status 0',
		'pvrun-bench: begin 0 run',
		'[   12.3] kernel says something',
		'rate=50.5 took=2',
		'pvrun-bench: end 0 run status 0',
		'pvrun-bench: begin 1 run',
		'working',
		'pvrun-bench: end 1 run status 124',
		'pvrun-bench: begin 2 run',
		'rate=5',
		'pvrun-bench: end 2 run status 0',
		'pvrun-bench: done',
	];
	const got = collect(lines, ctx);
	t.same(got.samples, [{scenario: 's', config: 'c', rep: 1, order: 0, workload: 'sum', values: {rate: 50.5, took: 2}}]);
	t.same(got.failures, [
		{scenario: 's', config: 'c', rep: 1, workload: 'two', error: 'timed out after 36 s', output: ['working']},
		{scenario: 's', config: 'c', rep: 1, workload: 'three', error: 'no line of its output matched the result pattern', output: ['rate=5']},
	]);
	const cut = collect(lines.slice(0, 9), ctx);
	t.same(
		cut.failures.map((f) => [f.workload, f.error]),
		[
			['two', 'did not run to its end'],
			['three', 'did not run to its end'],
		],
	);
	const failed = collect(['pvrun-bench: begin 0 run', 'oops', 'pvrun-bench: end 0 run status 2'], {...ctx, planned: planned.slice(0, 1)});
	t.equal(failed.failures[0]?.error, 'exited with status 2');
});

t.test("rotation, and a scenario's overcommit", async (t) => {
	t.same(
		[0, 1, 2, 3].map((r) => rotate(['a', 'b', 'c'], r).join('')),
		['abc', 'bca', 'cab', 'abc'],
	);
	t.same(scenarioRecord({name: 's', vcpus: 4, neighbourVms: 1, hostHogs: 'cpus'}, [0, 1]), {
		name: 's',
		vcpus: 4,
		hostCpus: [0, 1],
		neighbourVms: 1,
		neighbourVcpus: 2,
		hostHogs: 2,
		overcommit: 4,
	});
});

t.test('summary: medians per configuration, ratios to the baseline configuration of the same repetition', async (t) => {
	const s = (config: string, rep: number, rate: number) => ({scenario: 's', config, rep, order: 0, workload: 'sum', values: {rate, took: 1}});
	const rows = summarizeRun([s('plain', 0, 10), s('pvrun', 0, 30), s('plain', 1, 20), s('pvrun', 1, 40)], [checksum], 'plain');
	const rate = rows.find((r) => r.metric === 'rate');
	t.same(rate?.configs['plain'], {n: 2, median: 15, min: 10, max: 20, cv: 0.4714});
	t.same(rate?.ratios['pvrun'], {n: 2, median: 2.5, min: 2, max: 3, cv: 0.2828}, 'per repetition: 3 and 2');
	t.equal(rate?.label, 'sum rate', 'a metric without a label: workload and name');
	t.same(rate?.ratios['plain'], undefined, 'no ratio of the baseline to itself');
});
