// pvrun's own commands (src/cli/commands.ts): what the benchmarks get from
// the command line (pure functions: nothing runs); yargs' rules and those
// checks through runCommand in-process, each a one-line UsageError (exit
// status 2, docs/cli.md#exit-status; main.ts prints it: main.test.ts); and a
// valid command through the built CLI. The environment is isolated
// (test/helpers/isolated-env.ts): a command line wrongly accepted fails at
// once on the image instead of running a benchmark. Elsewhere: --help,
// --version, `image path|list` on the real cache, `image frobnicate`
// (main.test.ts, help.test.ts); `status` (status.test.ts).
import path from 'node:path';
import t from 'tap';
import {hintLatencyOptions, matrixOptions, runCommand} from '../../src/cli/commands.js';
import {UsageError} from '../../src/util/errors.js';
import {packageRoot} from '../../src/util/paths.js';
import {isolateProcess, runIsolated} from '../helpers/isolated-env.js';

const env = isolateProcess(t);

/**
 * The message of the error `f` throws or rejects with, when it is what the
 * command line must give: a UsageError (exit status 2) of one line.
 */
async function refusal(f: () => unknown): Promise<string> {
	try {
		await f();
	} catch (error) {
		if (error instanceof UsageError && error.exitCode === 2 && !error.message.includes('\n')) return error.message;
		return `not a one-line usage error: ${String(error)}`;
	}
	return 'accepted';
}

const allWorkloads = ['poll', 'pingpong', 'sleeper', 'locks', 'hintlat', 'uspin', 'klock'];

t.test('bench: the matrix gets the documented defaults, or the options given', async (t) => {
	t.strictSame(matrixOptions({quick: false}), {
		quick: false,
		reps: 3,
		seconds: 10,
		scenarios: ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
		workloads: allWorkloads,
		configs: ['plain', 'static', 'pvrun', 'pvrun-cs', 'pvrun-act', 'ceiling'],
		scenarioConfigs: {e: ['plain', 'static', 'pvrun'], f: ['plain', 'static', 'pvrun'], g: ['plain', 'static', 'pvrun']},
	});
	t.strictSame(
		matrixOptions({quick: true}),
		{
			quick: true,
			reps: 1,
			seconds: 0.5,
			scenarios: ['a', 'b', 'c', 'g'],
			workloads: allWorkloads,
			configs: ['plain', 'static', 'pvrun', 'pvrun-act', 'ceiling'],
			scenarioConfigs: {b: ['plain', 'pvrun'], c: ['plain', 'pvrun'], g: ['plain', 'pvrun']},
		},
		'--quick: every configuration but the overhead one in scenario a, plain and pvrun in b, c and g; no scenario d',
	);
	t.strictSame(
		matrixOptions({quick: true, reps: 2, seconds: 5, scenarios: 'c,a', workloads: 'sleeper,poll', configs: 'pvrun-cs,pvrun', out: '/tmp/x'}),
		{quick: true, reps: 2, seconds: 5, scenarios: ['c', 'a'], workloads: ['sleeper', 'poll'], configs: ['pvrun-cs', 'pvrun'], out: '/tmp/x'},
		'given options win over --quick, lists keep their order',
	);
	t.strictSame(matrixOptions({quick: false, scenarios: ',b,,a,'}).scenarios, ['b', 'a'], 'empty list entries are skipped');
	t.notOk('out' in matrixOptions({quick: false}), 'no --out: the default results folder');
});

t.test('bench: a bad number or list is refused, naming what to fix', async (t) => {
	const reps = (reps: number) => refusal(() => matrixOptions({quick: false, reps}));
	t.equal(await reps(0), '--reps must be a whole number of at least 1 (got 0)');
	t.equal(await reps(-2), '--reps must be a whole number of at least 1 (got -2)');
	t.equal(await reps(1.5), '--reps must be a whole number of at least 1 (got 1.5)');
	t.equal(await reps(NaN), '--reps must be a whole number of at least 1 (got NaN)', 'yargs makes a word given for a number NaN');
	t.equal(await refusal(() => matrixOptions({quick: true, seconds: 0})), '--seconds must be a whole number of at least 1 (got 0)', '--quick checks too');
	t.equal(await refusal(() => matrixOptions({quick: false, scenarios: 'nope'})), '--scenarios: unknown nope; choose from a,b,c,d,e,f,g');
	t.equal(
		await refusal(() => matrixOptions({quick: false, workloads: 'poll,nope,Sleeper'})),
		`--workloads: unknown nope,Sleeper; choose from ${allWorkloads.join(',')}`,
		'only the unknown entries are named, and every valid one',
	);
	t.equal(await refusal(() => matrixOptions({quick: false, scenarios: ','})), '--scenarios: unknown (empty); choose from a,b,c,d,e,f,g', 'a list of nothing');
});

t.test('bench hint-latency: its options are checked too; no warm-up is allowed', async (t) => {
	const defaults = {hints: 300, warmup: 50, runs: 3, 'idle-seconds': 20};
	t.strictSame(hintLatencyOptions(defaults), {hints: 300, warmup: 50, idleSeconds: 20, runs: 3, vcpus: 2});
	t.strictSame(hintLatencyOptions({hints: 1, warmup: 0, runs: 1, 'idle-seconds': 1, vcpus: 64, out: 'o'}), {
		hints: 1,
		warmup: 0,
		idleSeconds: 1,
		runs: 1,
		vcpus: 64,
		out: 'o',
	});
	t.equal(
		await refusal(() => hintLatencyOptions({...defaults, vcpus: 1})),
		'--vcpus must be a whole number of at least 2 and at most 256 (got 1)',
		'a guest thread pins itself to vCPU 1',
	);
	t.equal(await refusal(() => hintLatencyOptions({...defaults, vcpus: 257})), '--vcpus must be a whole number of at least 2 and at most 256 (got 257)');
	t.equal(await refusal(() => hintLatencyOptions({...defaults, hints: 0})), '--hints must be a whole number of at least 1 (got 0)');
	t.equal(await refusal(() => hintLatencyOptions({...defaults, warmup: -1})), '--warmup must be a whole number of at least 0 (got -1)');
	t.equal(await refusal(() => hintLatencyOptions({...defaults, runs: 0})), '--runs must be a whole number of at least 1 (got 0)');
	t.equal(await refusal(() => hintLatencyOptions({...defaults, 'idle-seconds': 2.5})), '--idle-seconds must be a whole number of at least 1 (got 2.5)');
	t.equal(await refusal(() => hintLatencyOptions({...defaults, hints: NaN})), '--hints must be a whole number of at least 1 (got NaN)');
	t.equal(
		await refusal(() => hintLatencyOptions({...defaults, quick: false, reps: 2, seconds: 1})),
		"--reps, --seconds: the matrix's, not hint-latency's, which takes --hints, --warmup, --runs, --idle-seconds, --vcpus and --out",
		'options of the matrix are refused, not ignored',
	);
	t.equal(
		await refusal(() => hintLatencyOptions({...defaults, quick: true})),
		"--quick: the matrix's, not hint-latency's, which takes --hints, --warmup, --runs, --idle-seconds, --vcpus and --out",
	);
});

t.test("runCommand: yargs' rules and the checks above, a one-line usage error each", async (t) => {
	const refused = (...argv: string[]) => refusal(() => runCommand(argv, '0.0.0'));
	t.equal(await refused('image'), 'image needs a verb: build, path or list (see pvrun image --help)', 'image without a verb');
	t.equal(
		await refused('bench', 'hint-latency', '--reps', '2'),
		"--reps: the matrix's, not hint-latency's, which takes --hints, --warmup, --runs, --idle-seconds, --vcpus and --out",
		'bench hint-latency with a matrix option',
	);
	t.equal(await refused('demo', 'now'), 'Unknown argument: now (see pvrun --help)');
	t.equal(await refused('bench', 'nope'), 'Invalid values: Argument: name, Given: "nope", Choices: "matrix", "hint-latency" (see pvrun --help)');
	t.equal(await refused('bench', '--reps'), 'Not enough arguments following: reps (see pvrun --help)', 'a number option without its number');
	t.equal(await refused('bench', '--out', '--quick'), 'Not enough arguments following: out (see pvrun --help)');
	t.equal(await refused('bench', 'hint-latency', '--hints'), 'Not enough arguments following: hints (see pvrun --help)');
	t.equal(await refused('bench', '--reps', '0'), '--reps must be a whole number of at least 1 (got 0)');
	t.equal(await refused('bench', '--seconds', 'soon'), '--seconds must be a whole number of at least 1 (got NaN)');
	t.equal(await refused('bench', '--workloads', 'poll,nope'), `--workloads: unknown nope; choose from ${allWorkloads.join(',')}`);
	t.equal(
		await refused('bench', '--scenarios', 'nope', '--scenarios', 'a', '--workloads', 'nope'),
		`--workloads: unknown nope; choose from ${allWorkloads.join(',')}`,
		'a repeated option: the last counts (the first would be refused, an array was a crash)',
	);
	t.equal(await refused('bench', 'hint-latency', '--warmup', '-1'), '--warmup must be a whole number of at least 0 (got -1)');
	t.equal(await refused('bench', 'hint-latency', '--runs', '0'), '--runs must be a whole number of at least 1 (got 0)');
	const example = path.join(packageRoot, 'docs', 'examples', 'ci', 'bench.json');
	t.equal(await refused('bench', '--baseline', 'old.json'), '--baseline: only with --matrix FILE or --compare RESULT', 'the gate needs a matrix file');
	t.equal(await refused('bench', '--threshold', '10', '--junit', 'j.xml'), '--junit, --threshold: only with --matrix FILE or --compare RESULT');
	t.equal(await refused('bench', '--matrix', '/nonexistent/m.json'), 'cannot read matrix file /nonexistent/m.json: ENOENT');
	t.equal(await refused('bench', '--compare', 'new.json'), '--compare needs --baseline OLD.json to compare with');
	t.equal(
		await refused('bench', '--compare', 'new.json', '--baseline', 'old.json', '--reps', '2', '--matrix', 'm.json'),
		'--compare runs nothing: --matrix, --reps mean nothing with it',
	);
	t.equal(await refused('bench', '--compare', 'new.json', '--baseline', '/nonexistent/old.json'), 'cannot read baseline /nonexistent/old.json: ENOENT');
	t.equal(await refused('bench', 'hint-latency', '--matrix', example), '--matrix runs a matrix file, not hint-latency');
	t.equal(await refused('bench', '--matrix', example, '--quick'), '--quick: the matrix file says how long each workload runs');
	t.equal(await refused('bench', '--matrix', example, '--threshold', '0'), '--threshold must be a percentage above 0 and below 100 (got 0)');
	t.equal(await refused('bench', '--matrix', example, '--alpha', '1'), '--alpha must be above 0 and below 1 (got 1)');
	t.equal(
		await refused('bench', '--matrix', example, '--gate', 'some'),
		'Invalid values: Argument: gate, Given: "some", Choices: "all", "ratios" (see pvrun --help)',
	);
	t.equal(await refused('bench', '--matrix', example, '--scenarios', 'nope'), 'the matrix has no scenario "nope" (it has crowded)', 'names from the file');
});

t.test('the built CLI: image list reads $XDG_CACHE_HOME', async (t) => {
	const list = await runIsolated(env, 'image', 'list');
	t.equal(list.exitCode, 0, list.stderr);
	t.equal(list.stdout, `no images in ${path.join(env.XDG_CACHE_HOME, 'pvrun')}`);
	t.equal(list.stderr, '');
});
