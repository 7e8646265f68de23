#!/usr/bin/env node
// pvrun's command line: --help, --version and its own subcommands (image,
// demo, bench, status; in commands.ts, loaded only for them) as the first
// argument; anything else is a QEMU command line, run with the hint channel
// added (or exactly as given when it runs no guest, see passthroughReason).
import {spawnSync, type SpawnSyncOptionsWithStringEncoding} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {causeChain, firstLine, PvrunError, UsageError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {runPlain, runVm} from '../vm/launch.js';
import {qemuLine} from './qemu-line.js';
import {commandDocs, commandHelpLine, optionHelpLine, pvOptionDocs} from './reference.js';

// Only these words, in first place, are pvrun's; `-h`, `-help`, `-version` are QEMU's.
const subcommands = new Set(commandDocs.map((c) => c.name));
/** Commands --help names on its last line rather than one of their own (one screen). */
// Said on the last line, or on another command's (status's stands for top and trace, image's for demo).
const helpLess = new Set(['completion', 'man', 'top', 'demo', 'trace']);

/**
 * `pvrun --version`: pvrun's version (with its commit in a git checkout) on the first line, then
 * the QEMU it runs by default and Node, what a bug report needs.
 */
function versionText(): string {
	const quiet: SpawnSyncOptionsWithStringEncoding = {encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore']};
	const commit = fs.existsSync(path.join(packageRoot, '.git'))
		? spawnSync('git', ['-C', packageRoot, 'rev-parse', '--short', 'HEAD'], quiet).stdout?.trim()
		: '';
	const qemu = spawnSync('qemu-system-x86_64', ['-version'], quiet);
	const qemuLine = qemu.status === 0 ? (qemu.stdout.split('\n', 1)[0] ?? '') : 'qemu-system-x86_64 not found on PATH (--pv-qemu names another)';
	return `pvrun ${version}${commit ? ` (commit ${commit})` : ''}\nqemu: ${qemuLine}\nnode: ${process.version}\n`;
}

const version = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {version: string}).version;

/** `pvrun --help`: one screen (under 24 lines of at most 80 columns, checked by test/cli/help.test.ts). */
export function helpText(): string {
	return `pvrun ${version}: qemu-system-x86_64 plus guest eBPF hints the host acts on.
Usage: pvrun [--pv-OPTION ...] QEMU-ARGUMENT ...   or   pvrun COMMAND ...
Example (sh; the default guest; Ctrl-A X quits): set -- $(pvrun image path)
  pvrun --pv-cpus 0-1 -m 512 -smp 2 -nographic -kernel "$1" -initrd "$2" \\
    -append console=ttyS0
QEMU's arguments go to QEMU unchanged. pvrun's, where a QEMU option may stand:
${pvOptionDocs
	.filter((o) => !o.manOnly)
	.map((o) => `${optionHelpLine(o)}\n`)
	.join('')}${commandDocs
		.filter((c) => !helpLess.has(c.name))
		.map((c) => `${commandHelpLine(c)}\n`)
		.join('')}pvrun --version; pvrun man; pvrun completion bash|zsh. -version, -help: QEMU's.
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
		process.stdout.write(versionText());
		return 0;
	}
	if (!subcommands.has(first)) return runQemu(argv);
	const {runCommand} = await import('./commands.js'); // yargs and the commands' modules load only for a command
	return runCommand(argv, version);
}

/**
 * `pvrun <qemu args>`: QEMU with the hint channel, or exactly as given with
 * --pv-off and for command lines that run no guest (passthroughReason).
 */
async function runQemu(argv: string[]): Promise<number> {
	const line = qemuLine(argv);
	if (line.kind === 'plain') {
		if ((line.say || line.options.dryRun) && line.unchanged !== undefined) process.stderr.write(`pvrun: QEMU runs exactly as given: ${line.unchanged}\n`);
		return line.options.dryRun ? printArgs(line.args) : runPlain(line.options.qemu, line.qemu);
	}
	if (line.options.dryRun) return printArgs(line.args);
	return runVm(line.plan, line.options, line.facts, line.root);
}

/**
 * --pv-dry-run: the final command line, one argument per line (an empty line
 * for an empty argument). An argument with a newline has no such form: refused.
 */
function printArgs(args: string[]): number {
	const i = args.findIndex((arg) => arg.includes('\n'));
	if (i >= 0) {
		const shown = JSON.stringify((args[i] ?? '').slice(0, 60));
		throw new UsageError(
			`--pv-dry-run prints one argument per line, but argument ${i} contains a newline: ${shown} (without --pv-dry-run it goes to QEMU unchanged)`,
		);
	}
	process.stdout.write(`${args.join('\n')}\n`);
	return 0;
}

/**
 * Report an error as one line on stderr and return its exit status (a
 * PvrunError's own; 70 for anything else, a bug). With PVRUN_DEBUG=1 set, the
 * whole cause chain follows, one line each, and a bug's stack.
 */
function report(error: unknown): number {
	const known = error instanceof PvrunError;
	process.stderr.write(known ? `pvrun: ${error.message}\n` : `pvrun: internal error: ${firstLine(error)}\n`);
	if (process.env['PVRUN_DEBUG']) {
		for (const line of causeChain(error).slice(1)) process.stderr.write(`pvrun:   caused by ${line}\n`);
		if (!known && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
	}
	return known ? error.exitCode : 70;
}

main(process.argv.slice(2)).then(
	(code) => {
		process.exitCode = code;
	},
	(error: unknown) => {
		process.exitCode = report(error);
	},
);
