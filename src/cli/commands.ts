// pvrun's own commands (image, demo, bench, status, completion, man), parsed by yargs. Loaded
// only when the first argument names one, and each command's own modules only
// when it runs: a QEMU command line (libvirt probes with dozens) never loads
// the benchmarks or their chart renderer (vega: about half a second).
import yargs from 'yargs';
import type {CiOptions} from '../bench/ci.js';
import type {GateOptions} from '../bench/gate.js';
import type {HintLatencyOptions} from '../bench/hint-latency.js';
import type {LoadedMatrix} from '../bench/matrix-file.js';
import {configNames, fullOptions, quickOptions, scenarioIds, workloadNames, type MatrixOptions} from '../bench/options.js';
import {imageCommand} from '../image/command.js';
import {agentCommand} from '../remote/command.js';
import {maxVcpus} from '../shm/layout.js';
import {traceCommand} from '../trace/command.js';
import {UsageError} from '../util/errors.js';

/** Parse and run `pvrun COMMAND ...`; resolves to the exit code. */
export async function runCommand(argv: string[], version: string): Promise<number> {
	let code = 0;
	const parser = yargs(argv)
		.scriptName('pvrun')
		.usage('pvrun: qemu-system-x86_64 with a hint channel from guest eBPF to host vCPU pinning.\n\nUsage: pvrun <command>')
		.command(imageCommand)
		.command(traceCommand)
		.command(agentCommand((c) => (code = c)))
		.command('demo', 'boot the default guest and show it reach readiness', {}, async () => {
			const {runDemo} = await import('../demo/demo.js');
			await runDemo();
		})
		.command(
			'bench [name]',
			'run a benchmark: matrix (default) or hint-latency',
			(y) =>
				y
					.positional('name', {choices: ['matrix', 'hint-latency'] as const, default: 'matrix' as const})
					.option('quick', {type: 'boolean', default: false, describe: 'matrix: the smoke run (1 repetition, 0.5 s per workload)'})
					.option('reps', {type: 'number', requiresArg: true, describe: 'matrix: repetitions (default 3; 1 with --quick)'})
					.option('seconds', {type: 'number', requiresArg: true, describe: 'matrix: seconds per workload (default 10; 0.5 with --quick)'})
					.option('scenarios', {type: 'string', requiresArg: true, describe: 'matrix: which scenarios, e.g. a,c (default all)'})
					.option('workloads', {type: 'string', requiresArg: true, describe: `matrix: which workloads (default ${workloadNames.join(',')})`})
					.option('configs', {
						type: 'string',
						requiresArg: true,
						describe: `matrix: which configurations (default ${configNames.join(',')}; --quick: all but pvrun-cs in scenario a, plain and pvrun in b, c and g)`,
					})
					.option('out', {
						type: 'string',
						requiresArg: true,
						describe: 'results folder (default ./bench/results/<date>-<host>, then -2, -3... rather than overwrite a run)',
					})
					.option('hints', {type: 'number', requiresArg: true, default: 300, describe: 'hint-latency: hints to measure'})
					.option('warmup', {type: 'number', requiresArg: true, default: 50, describe: 'hint-latency: hints before measuring'})
					.option('runs', {type: 'number', requiresArg: true, default: 3, describe: 'hint-latency: VMs booted one after the other, samples pooled'})
					.option('idle-seconds', {type: 'number', requiresArg: true, default: 20, describe: 'hint-latency: how long to measure idle CPU'})
					.option('vcpus', {type: 'number', requiresArg: true, default: 2, describe: "hint-latency: the guest's vCPUs (at most 256)"})
					.option('matrix', {type: 'string', requiresArg: true, describe: 'run the matrix this file describes (docs/ci.md; example: bench/matrix/pvrun.json)'})
					.option('baseline', {type: 'string', requiresArg: true, describe: '--matrix: compare with this earlier result.json; exit 1 on a regression'})
					.option('threshold', {
						type: 'number',
						requiresArg: true,
						describe: "--baseline: the smallest change that counts as a regression, in % (default: the file's, else 5)",
					})
					.option('alpha', {type: 'number', requiresArg: true, describe: "--baseline: the test's significance level (default: the file's, else 0.05)"})
					.option('gate', {
						choices: ['all', 'ratios'] as const,
						describe: "--baseline: which cells can fail: all, or only same-run ratios (default: the file's, else all)",
					})
					.option('junit', {type: 'string', requiresArg: true, describe: '--matrix: write JUnit XML here'})
					.option('summary', {type: 'string', requiresArg: true, describe: '--matrix: append the Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)'})
					.option('time-limit', {type: 'number', requiresArg: true, describe: '--matrix: seconds for the whole run; later boots are skipped'})
					.option('compare', {
						type: 'string',
						requiresArg: true,
						describe: "gate this earlier --matrix run's result.json against --baseline, running nothing",
					}),
			async (args) => {
				if (args.compare !== undefined) {
					const options = compareOptions(args);
					const {compareResults} = await import('../bench/ci.js');
					code = compareResults(args.compare, options);
					return;
				}
				if (args.matrix !== undefined) {
					const {loaded, options} = await matrixFileOptions(args);
					const {benchMatrixFile} = await import('../bench/ci.js');
					code = await benchMatrixFile({...options, matrix: loaded});
					return;
				}
				const fileOnly = (['baseline', 'junit', 'summary', 'time-limit', 'threshold', 'alpha', 'gate'] as const).filter((k) => args[k] !== undefined);
				if (fileOnly.length) throw new UsageError(`${fileOnly.map((k) => `--${k}`).join(', ')}: only with --matrix FILE or --compare RESULT`);
				// The options are checked before the benchmark's modules load: a usage error is immediate.
				if (args.name === 'hint-latency') {
					const options = hintLatencyOptions(args);
					const {benchHintLatency} = await import('../bench/hint-latency.js');
					await benchHintLatency(options);
					return;
				}
				const options = matrixOptions(args);
				const {benchMatrix} = await import('../bench/matrix.js');
				await benchMatrix(options);
			},
		)
		.command(
			'status',
			'list the pvrun VMs running on this machine',
			(y) =>
				y
					.option('all', {type: 'boolean', default: false, describe: "every user's VMs, not only yours (others' need root)"})
					.option('json', {type: 'boolean', default: false, describe: 'print JSON'}),
			async (args) => {
				const {statusCommand} = await import('./status.js');
				code = statusCommand({json: args.json, all: args.all});
			},
		)
		.command(
			'top [vm]',
			'a live view of the pvrun VMs and their decisions (q quits)',
			(y) =>
				y
					.positional('vm', {type: 'string', describe: 'one VM: its id, name, or QEMU or pvrun pid'})
					.option('all', {type: 'boolean', default: false, describe: "every user's VMs, not only yours (others' need root)"})
					.option('delay', {alias: 'd', type: 'number', requiresArg: true, default: 1, describe: 'seconds between frames'})
					.option('iterations', {alias: 'n', type: 'number', requiresArg: true, describe: 'frames to print, then end (default: until q; piped, 1)'}),
			async (args) => {
				const {topCommand, topOptions} = await import('./top.js');
				code = await topCommand(topOptions({vm: args.vm, all: args.all, delay: args.delay, iterations: args.iterations}));
			},
		)
		.command(
			'completion <shell>',
			'print a shell completion script: source <(pvrun completion bash)',
			(y) => y.positional('shell', {choices: ['bash', 'zsh'] as const, demandOption: true}),
			async (args) => {
				const {completionScript} = await import('./manual.js');
				process.stdout.write(completionScript(args.shell));
			},
		)
		.command('man', 'print the manual page pvrun(1) as roff: man -l <(pvrun man)', {}, async () => {
			const {manPage} = await import('./manual.js');
			process.stdout.write(manPage(version));
		})
		.example('pvrun image path', 'print the default guest kernel and initrd (building them if needed)')
		.demandCommand(1, 'name a command')
		.showHelpOnFail(false)
		// A repeated option: the last one counts (as an array it made `--scenarios a --scenarios c` a crash).
		.parserConfiguration({'duplicate-arguments-array': false})
		.strict()
		.version(version)
		.help()
		.alias('h', 'help')
		.wrap(Math.min(100, process.stdout.columns ?? 80))
		.fail((message: string | null, error: Error | undefined) => {
			// A message is yargs' complaint about the command line (some, as an option missing its
			// value, come with an error of yargs' own); without one, a command's handler threw.
			if (message) throw new UsageError(`${message.replace(/\s+/g, ' ').trim()} (see pvrun --help)`, error ? {cause: error} : {});
			throw error;
		});
	await parser.parseAsync();
	return code;
}

/** The matrix's options as yargs gives them. */
interface MatrixArgs {
	quick: boolean;
	reps?: number | undefined;
	seconds?: number | undefined;
	scenarios?: string | undefined;
	workloads?: string | undefined;
	configs?: string | undefined;
	out?: string | undefined;
}

/** The gate's options and reports as yargs gives them. */
interface GateArgs {
	baseline?: string | undefined;
	threshold?: number | undefined;
	alpha?: number | undefined;
	gate?: 'all' | 'ratios' | undefined;
	junit?: string | undefined;
	summary?: string | undefined;
}

/** `pvrun bench` (the matrix): its options from the command line, checked. */
export function matrixOptions(args: MatrixArgs): MatrixOptions {
	const {scenarioConfigs, ...base} = args.quick ? quickOptions : fullOptions;
	return {
		...base,
		// Configurations asked for by name are booted in every scenario.
		...(scenarioConfigs && args.configs === undefined ? {scenarioConfigs} : {}),
		reps: wholeNumber(args.reps ?? base.reps, '--reps'),
		// A user's are whole seconds; the quick run's default is half of one.
		seconds: args.seconds === undefined ? base.seconds : wholeNumber(args.seconds, '--seconds'),
		scenarios: listOf(args.scenarios, scenarioIds, base.scenarios, '--scenarios'),
		workloads: listOf(args.workloads, workloadNames, base.workloads, '--workloads'),
		configs: listOf(args.configs, configNames, base.configs, '--configs'),
		...(args.out ? {out: args.out} : {}),
	};
}

/** `pvrun bench --matrix FILE`: the file, loaded and checked, and the run's options. */
export async function matrixFileOptions(
	args: MatrixArgs & {
		name: string;
		matrix?: string | undefined;
		'time-limit'?: number | undefined;
	} & GateArgs,
): Promise<{loaded: LoadedMatrix; options: Omit<CiOptions, 'matrix'>}> {
	if (args.name !== 'matrix') throw new UsageError(`--matrix runs a matrix file, not ${args.name}`);
	if (args.quick || args.seconds !== undefined)
		throw new UsageError(`${args.quick ? '--quick' : '--seconds'}: the matrix file says how long each workload runs`);
	gateOptions(args);
	const limit = args['time-limit'];
	if (limit !== undefined && !(limit > 0)) throw new UsageError(`--time-limit must be a number of seconds above 0 (got ${limit})`);
	const {loadMatrixFile} = await import('../bench/matrix-file.js');
	const {parsePvOptions, splitArgs} = await import('./pv-options.js');
	const loaded = loadMatrixFile(args.matrix ?? '', (pvArgs) => {
		const {pv, qemu} = splitArgs(pvArgs);
		if (qemu.length) throw new UsageError(`"${qemu[0]}" is not a pvrun option (--pv-...)`);
		parsePvOptions(pv);
	});
	const names = (text: string | undefined) => text?.split(',').filter(Boolean);
	const scenarios = names(args.scenarios);
	const workloads = names(args.workloads);
	const configs = names(args.configs);
	return {
		loaded,
		options: {
			...(args.reps !== undefined ? {reps: wholeNumber(args.reps, '--reps')} : {}),
			...(limit !== undefined ? {timeLimitSeconds: limit} : {}),
			...(scenarios ? {scenarios} : {}),
			...(workloads ? {workloads} : {}),
			...(configs ? {configs} : {}),
			...(args.out ? {out: args.out} : {}),
			...(args.baseline !== undefined ? {baseline: args.baseline} : {}),
			...(args.junit !== undefined ? {junit: args.junit} : {}),
			...(args.summary !== undefined ? {summary: args.summary} : {}),
			gate: gateOptions(args, loaded.spec.gate),
		},
	};
}

/** `pvrun bench --compare NEW.json --baseline OLD.json`: the gate's options; nothing to run. */
export function compareOptions(args: MatrixArgs & GateArgs & {name: string; matrix?: string | undefined; 'time-limit'?: number | undefined}): Omit<
	CiOptions,
	'matrix'
> & {
	baseline: string;
} {
	if (args.baseline === undefined) throw new UsageError('--compare needs --baseline OLD.json to compare with');
	const runOnly = [
		...(args.name !== 'matrix' ? [args.name] : []),
		...(args.matrix !== undefined ? ['--matrix'] : []),
		...(args.quick ? ['--quick'] : []),
		...(['reps', 'seconds', 'scenarios', 'workloads', 'configs', 'out', 'time-limit'] as const).filter((k) => args[k] !== undefined).map((k) => `--${k}`),
	];
	if (runOnly.length) throw new UsageError(`--compare runs nothing: ${runOnly.join(', ')} mean nothing with it`);
	return {
		baseline: args.baseline,
		...(args.junit !== undefined ? {junit: args.junit} : {}),
		...(args.summary !== undefined ? {summary: args.summary} : {}),
		gate: gateOptions(args),
	};
}

/** The gate's settings: the command line's, else the matrix file's, else the defaults. */
function gateOptions(args: GateArgs, file?: {threshold?: number; alpha?: number; mode?: 'all' | 'ratios'}): GateOptions {
	if (args.threshold !== undefined && !(args.threshold > 0 && args.threshold < 100))
		throw new UsageError(`--threshold must be a percentage above 0 and below 100 (got ${args.threshold})`);
	if (args.alpha !== undefined && !(args.alpha > 0 && args.alpha < 1)) throw new UsageError(`--alpha must be above 0 and below 1 (got ${args.alpha})`);
	return {threshold: (args.threshold ?? file?.threshold ?? 5) / 100, alpha: args.alpha ?? file?.alpha ?? 0.05, mode: args.gate ?? file?.mode ?? 'all'};
}

/** `pvrun bench hint-latency`: its options from the command line, checked (no warm-up is allowed). */
export function hintLatencyOptions(args: {
	hints: number;
	warmup: number;
	runs: number;
	'idle-seconds': number;
	vcpus?: number | undefined;
	out?: string | undefined;
	quick?: boolean | undefined;
	reps?: number | undefined;
	seconds?: number | undefined;
	scenarios?: string | undefined;
	workloads?: string | undefined;
	configs?: string | undefined;
}): HintLatencyOptions {
	// The matrix's options mean nothing here: said, rather than ignored.
	const matrixOnly = (['quick', 'reps', 'seconds', 'scenarios', 'workloads', 'configs'] as const).filter((k) => args[k] !== undefined && args[k] !== false);
	if (matrixOnly.length)
		throw new UsageError(
			`${matrixOnly.map((k) => `--${k}`).join(', ')}: the matrix's, not hint-latency's, which takes --hints, --warmup, --runs, --idle-seconds, --vcpus and --out`,
		);
	return {
		hints: wholeNumber(args.hints, '--hints'),
		warmup: wholeNumber(args.warmup, '--warmup', 0),
		idleSeconds: wholeNumber(args['idle-seconds'], '--idle-seconds'),
		runs: wholeNumber(args.runs, '--runs'),
		vcpus: wholeNumber(args.vcpus ?? 2, '--vcpus', 2, maxVcpus),
		...(args.out ? {out: args.out} : {}),
	};
}

/** A whole number >= `min` from a command-line option. */
function wholeNumber(v: number, name: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
	if (!Number.isInteger(v) || v < min || v > max)
		throw new UsageError(`${name} must be a whole number of at least ${min}${max < Number.MAX_SAFE_INTEGER ? ` and at most ${max}` : ''} (got ${v})`);
	return v;
}

/** A comma-separated choice of `all`, or `fallback` when not given. */
function listOf<T extends string>(text: string | undefined, all: readonly T[], fallback: T[], name: string): T[] {
	if (text === undefined) return fallback;
	const items = text.split(',').filter(Boolean);
	const bad = items.filter((i) => !(all as readonly string[]).includes(i));
	if (bad.length || items.length === 0) throw new UsageError(`${name}: unknown ${bad.join(',') || '(empty)'}; choose from ${all.join(',')}`);
	return items as T[];
}
