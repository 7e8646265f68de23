// Matrix files (src/bench/matrix-file.ts): pvrun's own matrix and the CI
// example load, and pvrun.json's commands are the built-in matrix's, so the two
// cannot drift apart; every kind of mistake is one line naming the file and
// the place; placeholders, result parsing and host CPUs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {scenarios as builtinScenarios, workloadCommand, workloadNames} from '../../src/bench/matrix.js';
import {
	checkMatrix,
	expandCommand,
	loadMatrixFile,
	parseWorkloadOutput,
	scenarioCpus,
	type MatrixFile,
	type WorkloadSpec,
} from '../../src/bench/matrix-file.js';
import {plan} from '../../src/bench/run-matrix.js';
import {UsageError} from '../../src/util/errors.js';
import {packageRoot} from '../../src/util/paths.js';

const ownMatrix = path.join(packageRoot, 'bench', 'matrix', 'pvrun.json');

t.test("pvrun.json is the built-in matrix's workloads, scenarios a-f and configurations but the ceiling", async (t) => {
	const {spec, name} = loadMatrixFile(ownMatrix);
	t.equal(name, 'pvrun');
	t.same(
		spec.configs.map((c) => c.name),
		['plain', 'static', 'pvrun', 'pvrun-cs', 'pvrun-act'],
	);
	let compared = 0;
	for (const s of spec.scenarios) {
		const builtin = builtinScenarios[s.name as keyof typeof builtinScenarios];
		t.ok(builtin, `scenario ${s.name} is a built-in one`);
		t.equal(s.vcpus, builtin.vcpus, `${s.name}: vCPUs`);
		t.equal((s.neighbourVms ?? 0) > 0, builtin.neighbourVm, `${s.name}: neighbour VM`);
		t.equal(s.hostHogs === 'cpus', builtin.hostHogs, `${s.name}: busy host processes`);
		for (const c of spec.configs) {
			const planned = plan(spec.workloads, s, c);
			for (const w of workloadNames) {
				const theirs = workloadCommand(w, builtin, 10, c.name as 'plain', false)?.replaceAll(',', ' ');
				const ours = planned.find((p) => p.workload.name === w || p.workload.name === `${w}-big`)?.command;
				// Big VMs boot plain, static and pvrun only in the built-in matrix.
				if (s.vcpus > 4 && c.name.startsWith('pvrun-')) continue;
				t.equal(ours, theirs, `${s.name}, ${c.name}, ${w}`);
				compared++;
			}
		}
	}
	t.ok(compared > 100, `${compared} commands compared`);
});

t.test('the CI example loads', async (t) => {
	const {spec} = loadMatrixFile(path.join(packageRoot, 'docs', 'examples', 'ci', 'bench.json'));
	t.equal(spec.workloads[0]?.files?.[0]?.from, 'work.sh');
	t.ok(fs.existsSync(path.join(packageRoot, 'docs', 'examples', 'ci', 'work.sh')), 'its file is there');
});

const minimal = (): MatrixFile => ({
	format: 'pvrun-matrix/1',
	workloads: [{name: 'w', command: 'echo x=1', result: {regex: 'x=(?<x>\\d+)'}, metrics: [{name: 'x', better: 'higher'}]}],
	scenarios: [{name: 's', vcpus: 2}],
	configs: [{name: 'plain', kind: 'plain'}],
});

function refusal(edit: (m: MatrixFile & Record<string, unknown>) => void, checkPv?: (a: readonly string[]) => void): string {
	const m = minimal() as MatrixFile & Record<string, unknown>;
	edit(m);
	try {
		checkMatrix(JSON.parse(JSON.stringify(m)), 'm.json', checkPv);
	} catch (error) {
		if (error instanceof UsageError && !error.message.includes('\n')) return error.message;
		return `not a one-line usage error: ${String(error)}`;
	}
	return 'accepted';
}

t.test('mistakes: one line each, naming the file and the place', async (t) => {
	t.equal(
		refusal(() => {}),
		'accepted',
		'the minimal matrix is fine',
	);
	t.equal(
		refusal((m) => {
			m.format = 'pvrun-matrix/2' as 'pvrun-matrix/1';
		}),
		'matrix file m.json: /format: must be equal to constant',
	);
	t.equal(
		refusal((m) => {
			m['workload'] = [];
		}),
		'matrix file m.json: /: must NOT have additional properties "workload"',
		'a misspelt field',
	);
	t.equal(
		refusal((m) => {
			m.configs[0] = {name: 'plain', kind: 'bare' as 'plain'};
		}),
		'matrix file m.json: /configs/0/kind: must be equal to one of the allowed values (plain, static, pvrun)',
	);
	t.equal(
		refusal((m) => {
			m.scenarios.push({name: 's', vcpus: 4});
		}),
		'matrix file m.json: two scenarios are named "s"',
	);
	t.equal(
		refusal((m) => {
			(m.workloads[0] as WorkloadSpec).scenarios = ['t'];
		}),
		'matrix file m.json: workload "w": no scenario "t"',
	);
	t.match(
		refusal((m) => {
			(m.workloads[0] as WorkloadSpec).result = {regex: 'x=(?<x>\\d+'};
		}),
		/^matrix file m\.json: workload "w": the regular expression does not compile: /,
	);
	t.equal(
		refusal((m) => {
			(m.workloads[0] as WorkloadSpec).metrics.push({name: 'y', better: 'lower'});
		}),
		'matrix file m.json: workload "w": the regular expression has no group named "y"',
	);
	t.equal(
		refusal((m) => {
			m.configs.push({name: 'p', kind: 'plain', args: ['--pv-cs', 'act']});
		}),
		'matrix file m.json: configuration "p": args are pvrun\'s options; kind is plain',
	);
	t.equal(
		refusal(
			(m) => {
				m.configs.push({name: 'p', kind: 'pvrun', args: ['--pv-nope']});
			},
			(args) => {
				throw new UsageError(`unknown option ${args[0]} (see pvrun --help)`);
			},
		),
		'matrix file m.json: configuration "p": unknown option --pv-nope',
		"pvrun's own options are checked by the callback the command line gives",
	);
	t.equal(
		refusal((m) => {
			m.scenarios[0] = {name: 's', vcpus: 2, hostCpus: '0-'};
		}),
		'matrix file m.json: /scenarios/0/hostCpus: must match pattern "^\\d+(-\\d+)?(,\\d+(-\\d+)?)*$"',
	);
	t.equal(
		refusal((m) => {
			m.baselineConfig = 'pvrun';
		}),
		'matrix file m.json: baselineConfig "pvrun" is not a configuration',
	);

	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-matrix-file-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const file = path.join(dir, 'm.json');
	fs.writeFileSync(file, '{"format": ');
	t.throws(() => loadMatrixFile(file), {name: 'UsageError', message: new RegExp(`^matrix file ${file} is not JSON: `)});
	t.throws(() => loadMatrixFile(path.join(dir, 'none.json')), {name: 'UsageError', message: `cannot read matrix file ${path.join(dir, 'none.json')}: ENOENT`});
	fs.writeFileSync(file, JSON.stringify(minimal()));
	t.equal(loadMatrixFile(file).name, 'm', 'a matrix without a name is named by its file');
});

t.test('placeholders', async (t) => {
	t.equal(
		expandCommand('run -s {seconds} -b {vcpus-1} -c {vcpus-2} -t {vcpus} {files}/x', {seconds: 2.5, vcpus: 4, files: '/f'}),
		'run -s 2.5 -b 3 -c 2 -t 4 /f/x',
	);
	t.equal(expandCommand('-b {vcpus-3}', {seconds: 1, vcpus: 2, files: '/f'}), '-b 0', 'never below 0');
	t.equal(expandCommand('{other} {vcpus+1}', {seconds: 1, vcpus: 2, files: '/f'}), '{other} {vcpus+1}', 'unknown ones stay');
});

t.test('results: the first matching line; named groups or the single group; JSON with dotted keys', async (t) => {
	const w = (result: WorkloadSpec['result'], metrics: string[]): WorkloadSpec => ({
		name: 'w',
		command: 'x',
		result,
		metrics: metrics.map((name) => ({name, better: 'higher'})),
	});
	t.same(parseWorkloadOutput(w({regex: 'a=(?<a>[\\d.]+) b=(?<b>\\S+)'}, ['a', 'b']), ['noise', 'a=1.5 b=2e3', 'a=9 b=9']), {a: 1.5, b: 2000});
	t.same(parseWorkloadOutput(w({regex: 'took ([\\d.]+) s'}, ['t']), ['took 3.25 s']), {t: 3.25}, 'one metric, one unnamed group');
	t.same(parseWorkloadOutput(w({regex: 'a=(?<a>\\S+)'}, ['a']), ['a=NaN']), {}, 'not a finite number: left out');
	t.equal(parseWorkloadOutput(w({regex: 'zzz'}, ['a']), ['a=1']), undefined, 'no line matches');
	const json = w({json: 'result '}, ['x', 'runs.1.ops', 'deep.y']);
	t.same(parseWorkloadOutput(json, ['result nope', 'result {"x":1,"runs":[{"ops":2},{"ops":3}],"deep":{"y":"s"}}']), {x: 1, 'runs.1.ops': 3});
	t.same(parseWorkloadOutput(w({json: ''}, ['x']), ['[1]', '{"x": 4}']), {x: 4}, 'no prefix: the first JSON object line');
});

t.test("a scenario's host CPUs: a count or a list, within pvrun's", async (t) => {
	t.same(scenarioCpus({name: 's', vcpus: 2}, [0, 1, 2]), [0, 1, 2]);
	t.same(scenarioCpus({name: 's', vcpus: 2, hostCpus: 2}, [4, 5, 6]), [4, 5]);
	t.same(scenarioCpus({name: 's', vcpus: 2, hostCpus: '1,3'}, [0, 1, 2, 3]), [1, 3]);
	t.throws(() => scenarioCpus({name: 's', vcpus: 2, hostCpus: 4}, [0, 1]), {message: 'scenario "s" asks for 4 host CPUs; this host allows 2'});
	t.throws(() => scenarioCpus({name: 's', vcpus: 2, hostCpus: '1-2'}, [0, 1]), {message: 'scenario "s": host CPU 2 is not one pvrun may use (allowed: 0,1)'});
});
