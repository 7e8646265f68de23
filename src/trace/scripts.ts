// The host-side bpftrace scripts pvrun ships (bpf/trace/*.bt): finding them, reading what each
// says of itself, and the bpftrace command line that runs one against a VM. Each script's
// header comment names it and says what it measures on one line (` * NAME.bt - WHAT`) and the
// parameters it takes on another (` * Usage: bpftrace NAME.bt QEMU_PID [PVRUN_PID]`): pvrun
// fills them from the VM it traces, so a new script is one file here. docs/trace.md.
import fs from 'node:fs';
import path from 'node:path';
import {PvrunError, UsageError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';

/** Where the scripts are. */
export const traceDir = path.join(packageRoot, 'bpf', 'trace');

/** The positional parameters a script may take, filled from the VM traced. */
export const traceParams = ['QEMU_PID', 'PVRUN_PID'] as const;
export type TraceParam = (typeof traceParams)[number];

export interface TraceScript {
	/** Its file name without `.bt`. */
	name: string;
	file: string;
	/** What it measures, one line. */
	description: string;
	/** Its positional parameters ($1, $2, ...) in order. */
	params: TraceParam[];
}

/** The VM a script runs against: QEMU's pid, and pvrun's (its helper's) when pvrun runs it. */
export interface TraceTarget {
	qemuPid: number;
	pvrunPid?: number;
}

/** The description and parameters in a script's header, or why they cannot be read. */
export function parseHeader(name: string, text: string): {description: string; params: TraceParam[]} {
	const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
	const head = text.slice(0, text.indexOf('*/') >= 0 ? text.indexOf('*/') : text.length);
	const description = new RegExp(`^\\s*\\*\\s*${escaped}\\.bt\\s+-\\s+(.+?)\\s*$`, 'm').exec(head)?.[1];
	if (!description) throw new Error(`its header has no line " * ${name}.bt - WHAT IT MEASURES"`);
	const usage = new RegExp(`^\\s*\\*\\s*Usage:\\s+bpftrace\\s+${escaped}\\.bt\\b(.*)$`, 'm').exec(head)?.[1];
	if (usage === undefined) throw new Error(`its header has no line " * Usage: bpftrace ${name}.bt QEMU_PID ..."`);
	// The parameters run up to the first word that is not one (a note in parentheses, say).
	const params: TraceParam[] = [];
	for (const word of usage.trim().split(/\s+/)) {
		const param = word.replace(/^\[|\]$/g, '');
		if (!/^[A-Z][A-Z0-9_]*$/.test(param)) break;
		if (!(traceParams as readonly string[]).includes(param)) throw new Error(`its parameter ${param} is none pvrun knows (${traceParams.join(', ')})`);
		params.push(param as TraceParam);
	}
	return {description, params};
}

/** The script in `file`, read and checked: a PvrunError naming the file when its header is not one. */
export function readScript(file: string): TraceScript {
	const name = path.basename(file).replace(/\.bt$/, '');
	let text: string;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch (error) {
		throw new PvrunError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {cause: error});
	}
	try {
		return {name, file, ...parseHeader(name, text)};
	} catch (error) {
		throw new PvrunError(`${file}: ${(error as Error).message}`, {cause: error});
	}
}

/** The scripts in `dir`, by name. */
export function listScripts(dir: string = traceDir): TraceScript[] {
	let names: string[];
	try {
		names = fs.readdirSync(dir).filter((n) => n.endsWith('.bt'));
	} catch (error) {
		throw new PvrunError(`cannot list the trace scripts in ${dir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {cause: error});
	}
	return names.sort().map((n) => readScript(path.join(dir, n)));
}

/**
 * The script `name` names: one of `dir`'s, with or without `.bt`, or a file of the user's
 * when it holds a slash. A UsageError naming the scripts there is otherwise.
 */
export function findScript(name: string, dir: string = traceDir): TraceScript {
	if (name.includes('/')) {
		if (!fs.existsSync(name)) throw new UsageError(`no trace script ${name}`);
		return readScript(path.resolve(name));
	}
	const scripts = listScripts(dir);
	const found = scripts.find((s) => s.name === name.replace(/\.bt$/, ''));
	if (!found) throw new UsageError(`no trace script "${name}": ${scripts.map((s) => s.name).join(', ')} (pvrun trace lists them)`);
	return found;
}

/** `pvrun trace` without a name: each script and what it measures, then how to run one. */
export function formatScriptList(scripts: readonly TraceScript[]): string {
	const width = Math.max(0, ...scripts.map((s) => s.name.length));
	return [
		...scripts.map((s) => `${s.name.padEnd(width)}  ${s.description}`),
		'',
		'pvrun trace NAME [--vm VM] [--duration SECONDS]: run one against a VM (as root; docs/trace.md)',
		'',
	].join('\n');
}

/**
 * bpftrace's arguments for `script` against `target`: output unbuffered (pvrun passes it on as it
 * comes, and sees when the probes are attached), the caller's own bpftrace options, the
 * script, then its parameters. PVRUN_PID is 0, "anyone's", for a QEMU pvrun does not run.
 */
export function bpftraceArgs(script: TraceScript, target: TraceTarget, extra: readonly string[] = []): string[] {
	const value = (p: TraceParam): string => String(p === 'QEMU_PID' ? target.qemuPid : (target.pvrunPid ?? 0));
	return ['-B', 'none', ...extra, script.file, ...script.params.map(value)];
}
