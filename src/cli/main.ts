#!/usr/bin/env node
// pvrun's command line: --help, --version and its own subcommands (image,
// demo, bench, status; parsed by yargs) as the first argument; anything else
// is a QEMU command line, run with the hint channel added (or exactly as
// given when it runs no guest, see passthroughReason).
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import {benchHintLatency} from '../bench/hint-latency.js';
import {benchMatrix, fullOptions, quickOptions, scenarioIds, workloadNames} from '../bench/matrix.js';
import {runDemo} from '../demo/demo.js';
import {imageCommand} from '../image/command.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {planVm, runPlain, runVm} from '../vm/launch.js';
import {parsePvOptions, splitArgs} from './pv-options.js';
import {passthroughReason} from './qemu-options.js';
import {statusCommand} from './status.js';

// Only these words, in first place, are pvrun's; `-h`, `-help`, `-version` are QEMU's.
const subcommands = new Set(['image', 'demo', 'bench', 'status']);

const version = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {version: string}).version;

/** `pvrun --help`: one screen (under 24 lines of at most 80 columns, checked by test/cli/help.test.ts). */
export function helpText(): string {
	return `pvrun ${version}: qemu-system-x86_64 plus a hint channel from guest eBPF
programs to host vCPU pinning. Use it where you use QEMU.

Usage: pvrun [--pv-OPTION ...] QEMU-ARGUMENT ...   or   pvrun COMMAND ...

Example (sh; boots the default guest, Ctrl-A X quits):
  set -- $(pvrun image path)
  pvrun --pv-cpus 0-1 -m 512 -smp 2 -nographic -kernel "$1" -initrd "$2" \\
    -append console=ttyS0

QEMU's arguments go to QEMU unchanged. pvrun's, where a QEMU option may stand:
  --pv-cpus LIST   host CPUs for the vCPUs, e.g. 0-3,6 (default: all allowed)
  --pv-accel MODE  auto|kvm|tcg, when QEMU's arguments choose none (auto)
  --pv-log FILE    write pvrun's decisions to FILE, one JSON object a line
  --pv-off         run QEMU exactly as given, without the hint channel
  --pv-fast-path X on|off: apply hints in the native fast path (on)
  --pv-dry-run     print the QEMU command line, one argument a line; exit
  --pv-qemu PATH   the QEMU binary (default: qemu-system-x86_64)
Commands:
  pvrun status [--json]        the pvrun VMs running on this machine
  pvrun image build|path|list  the default guest's kernel and initrd
  pvrun demo                   boot the default guest and show hints acting
  pvrun bench [--quick]        the benchmark matrix (or: bench hint-latency)
pvrun --version: pvrun's version (-version, -help: QEMU's). See docs/cli.md.
`;
}

/** Parse and run one pvrun invocation; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
	const first = argv[0];
	if (first === undefined) {
		// Plain QEMU would boot an empty default machine: more likely, a user wants to know what pvrun is.
		process.stderr.write(helpText());
		return 2;
	}
	if (first === '--help') {
		process.stdout.write(helpText());
		return 0;
	}
	if (first === '--version') {
		process.stdout.write(`${version}\n`);
		return 0;
	}
	if (!subcommands.has(first)) return runQemu(argv);
	let code = 0;
	const parser = yargs(argv)
		.scriptName('pvrun')
		.usage('pvrun: qemu-system-x86_64 with a hint channel from guest eBPF to host vCPU pinning.\n\nUsage: pvrun <command>')
		.command(imageCommand)
		.command('demo', 'boot the default guest and show it reach readiness', {}, async () => {
			await runDemo();
		})
		.command(
			'bench [name]',
			'run a benchmark: matrix (default) or hint-latency',
			(y) =>
				y
					.positional('name', {choices: ['matrix', 'hint-latency'] as const, default: 'matrix' as const})
					.option('quick', {type: 'boolean', default: false, describe: 'matrix: the smoke run (1 repetition, 2 s per workload)'})
					.option('reps', {type: 'number', describe: 'matrix: repetitions (default 3; 1 with --quick)'})
					.option('seconds', {type: 'number', describe: 'matrix: seconds per workload (default 10; 2 with --quick)'})
					.option('scenarios', {type: 'string', describe: 'matrix: which scenarios, e.g. a,c (default all)'})
					.option('workloads', {type: 'string', describe: `matrix: which workloads (default ${workloadNames.join(',')})`})
					.option('out', {type: 'string', describe: 'results folder (default bench/results/<date>-<host>, then -2, -3... rather than overwrite a run)'})
					.option('hints', {type: 'number', default: 300, describe: 'hint-latency: hints to measure'})
					.option('warmup', {type: 'number', default: 50, describe: 'hint-latency: hints before measuring'})
					.option('runs', {type: 'number', default: 3, describe: 'hint-latency: VMs booted one after the other, samples pooled'})
					.option('idle-seconds', {type: 'number', default: 20, describe: 'hint-latency: how long to measure idle CPU'}),
			async (args) => {
				if (args.name === 'hint-latency') {
					await benchHintLatency({hints: args.hints, warmup: args.warmup, idleSeconds: args['idle-seconds'], runs: args.runs, ...(args.out ? {out: args.out} : {})});
					return;
				}
				const base = args.quick ? quickOptions : fullOptions;
				await benchMatrix({
					...base,
					reps: positiveInt(args.reps ?? base.reps, '--reps'),
					seconds: positiveInt(args.seconds ?? base.seconds, '--seconds'),
					scenarios: listOf(args.scenarios, scenarioIds, base.scenarios, '--scenarios'),
					workloads: listOf(args.workloads, workloadNames, base.workloads, '--workloads'),
					...(args.out ? {out: args.out} : {}),
				});
			},
		)
		.command(
			'status',
			'list the pvrun VMs running on this machine',
			(y) => y.option('json', {type: 'boolean', default: false, describe: 'print JSON'}),
			(args) => {
				code = statusCommand({json: args.json});
			},
		)
		.example('pvrun image path', 'print the default guest kernel and initrd (building them if needed)')
		.demandCommand(1, 'name a command')
		.showHelpOnFail(false)
		.strict()
		.version(version)
		.help()
		.alias('h', 'help')
		.wrap(Math.min(100, process.stdout.columns ?? 80))
		.fail((message, error) => {
			throw error ?? new PvrunError(`${message.replace(/\s+/g, ' ').trim()} (see pvrun --help)`, {exitCode: 2});
		});
	await parser.parseAsync();
	return code;
}

/**
 * `pvrun <qemu args>`: QEMU with the hint channel, or exactly as given with
 * --pv-off and for command lines that run no guest (passthroughReason).
 */
async function runQemu(argv: string[]): Promise<number> {
	const {pv, qemu} = splitArgs(argv);
	const options = parsePvOptions(pv);
	const unchanged = options.off ? undefined : passthroughReason(qemu);
	if (options.off || unchanged !== undefined) {
		if (!options.dryRun) return runPlain(options.qemu, qemu);
		if (unchanged !== undefined) process.stderr.write(`pvrun: QEMU runs exactly as given: ${unchanged}\n`);
		return printArgs([options.qemu, ...qemu]);
	}
	const plan = planVm(qemu, options);
	if (options.dryRun) return printArgs([options.qemu, ...plan.args]);
	return runVm(plan, options);
}

/**
 * --pv-dry-run: the final command line, one argument per line (an empty line
 * for an empty argument). An argument with a newline has no such form: refused.
 */
function printArgs(args: string[]): number {
	const i = args.findIndex((arg) => arg.includes('\n'));
	if (i >= 0) {
		const shown = JSON.stringify((args[i] ?? '').slice(0, 60));
		throw new PvrunError(`--pv-dry-run prints one argument per line, but argument ${i} contains a newline: ${shown} (without --pv-dry-run it goes to QEMU unchanged)`, {exitCode: 2});
	}
	process.stdout.write(`${args.join('\n')}\n`);
	return 0;
}

/** Report an error as one line on stderr and return its exit code. */
function report(error: unknown): number {
	if (error instanceof PvrunError) {
		process.stderr.write(`pvrun: ${error.message}\n`);
		return error.exitCode;
	}
	process.stderr.write(`pvrun: internal error: ${firstLine(error)}\n`);
	if (process.env['PVRUN_DEBUG']) console.error(error);
	return 70;
}

main(process.argv.slice(2)).then(
	(code) => {
		process.exitCode = code;
	},
	(error: unknown) => {
		process.exitCode = report(error);
	},
);

/** A whole number >= 1 from a command-line option. */
function positiveInt(v: number, name: string): number {
	if (!Number.isInteger(v) || v < 1) throw new PvrunError(`${name} must be a whole number of at least 1 (got ${v})`, {exitCode: 2});
	return v;
}

/** A comma-separated choice of `all`, or `fallback` when not given. */
function listOf<T extends string>(text: string | undefined, all: readonly T[], fallback: T[], name: string): T[] {
	if (text === undefined) return fallback;
	const items = text.split(',').filter(Boolean);
	const bad = items.filter((i) => !(all as readonly string[]).includes(i));
	if (bad.length || items.length === 0) throw new PvrunError(`${name}: unknown ${bad.join(',') || '(empty)'}; choose from ${all.join(',')}`, {exitCode: 2});
	return items as T[];
}
