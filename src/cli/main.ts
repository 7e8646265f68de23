#!/usr/bin/env node
// pvrun's command line: its own subcommands (image, demo) parsed by yargs;
// anything else is a QEMU command line, run with the hint channel added.
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import {benchHintLatency} from '../bench/hint-latency.js';
import {runDemo} from '../demo/demo.js';
import {imageCommand} from '../image/command.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {planVm, runPlain, runVm} from '../vm/launch.js';
import {parsePvOptions, splitArgs} from './pv-options.js';

const subcommands = new Set(['image', 'demo', 'bench', '--help', '-h', '--version']);

const version = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {version: string}).version;

/** Parse and run one pvrun invocation; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
	if (argv.length > 0 && !subcommands.has(argv[0] ?? '')) return runQemu(argv);
	const parser = yargs(argv)
		.scriptName('pvrun')
		.usage('pvrun: qemu-system-x86_64 with a hint channel from guest eBPF to host vCPU pinning.\n\nUsage: pvrun <command>')
		.command(imageCommand)
		.command('demo', 'boot the default guest and show it reach readiness', {}, async () => {
			await runDemo();
		})
		.command(
			'bench <name>',
			'run a benchmark (hint-latency)',
			(y) =>
				y
					.positional('name', {choices: ['hint-latency'] as const})
					.option('hints', {type: 'number', default: 300, describe: 'hints to measure'})
					.option('warmup', {type: 'number', default: 50, describe: 'hints before measuring'})
					.option('runs', {type: 'number', default: 3, describe: 'VMs booted one after the other, samples pooled'})
					.option('idle-seconds', {type: 'number', default: 10, describe: 'how long to measure idle CPU'}),
			async (args) => {
				await benchHintLatency({hints: args.hints, warmup: args.warmup, idleSeconds: args['idle-seconds'], runs: args.runs});
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
	return 0;
}

/** `pvrun <qemu args>`: QEMU with the hint channel (or exactly as given with --pv-off). */
async function runQemu(argv: string[]): Promise<number> {
	const {pv, qemu} = splitArgs(argv);
	const options = parsePvOptions(pv);
	if (options.off) return options.dryRun ? printArgs([options.qemu, ...qemu]) : runPlain(options.qemu, qemu);
	const plan = planVm(qemu, options);
	if (options.dryRun) return printArgs([options.qemu, ...plan.args]);
	return runVm(plan, options);
}

/** --pv-dry-run: the final command line, one argument per line. */
function printArgs(args: string[]): number {
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
