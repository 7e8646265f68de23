// Running bpftrace for `pvrun trace`: its output passed on as it comes, Ctrl-C (and SIGTERM,
// SIGHUP) passed to it so that it prints its maps and ends, --duration as a SIGINT that many
// seconds after its probes are attached, and the same when the traced QEMU ends. What can go
// wrong is one line: bpftrace missing, not allowed to load BPF programs here; a script's own
// error is bpftrace's message, then that line.
import fs from 'node:fs';
import path from 'node:path';
import type {Writable} from 'node:stream';
import {execa} from 'execa';
import {processAlive} from '../host/proc.js';
import {PvrunError} from '../util/errors.js';

/** How long bpftrace may take to print its maps and end after SIGINT. */
const endGraceMs = 15_000;
/** How often the traced QEMU is looked at. */
const watchMs = 500;

/** bpftrace's path on `PATH`, or undefined when it is not installed. */
export function findBpftrace(pathVar: string = process.env['PATH'] ?? ''): string | undefined {
	for (const dir of pathVar.split(':').filter(Boolean)) {
		const file = path.join(dir, 'bpftrace');
		try {
			fs.accessSync(file, fs.constants.X_OK);
			if (fs.statSync(file).isFile()) return file;
		} catch {
			// not here
		}
	}
	return undefined;
}

/** The one line said when bpftrace is not installed. */
export const missingBpftrace = 'bpftrace is not installed: make setup installs it (or apt-get install bpftrace)';

/**
 * bpftrace's stderr without what it says on every start where it cannot raise RLIMIT_MEMLOCK
 * (an "ERROR" that is none: since Linux 5.11 BPF memory is charged to the cgroup instead).
 */
export function filterStderr(text: string): string {
	return text
		.split('\n')
		.filter((line) => !/couldn't set RLIMIT_MEMLOCK/.test(line))
		.join('\n');
}

/** Its first line that says ERROR, else its first line that says anything. */
export function firstError(stderr: string): string | undefined {
	const lines = stderr
		.split('\n')
		.map((l) => l.trim())
		.filter(Boolean);
	return lines.find((l) => /\bERROR\b/.test(l)) ?? lines[0];
}

/** Whether bpftrace failed because it may not load BPF programs here (not root, no capability, lockdown). */
export function forbidden(stderr: string): boolean {
	return /only supports running as the root user|Operation not permitted|Permission denied|\bEPERM\b|\bEACCES\b|lockdown/i.test(stderr);
}

/** A stream's text with no more than one blank line in a row (bpftrace leaves one per map a script cleared). */
export function blankLineSqueezer(): (chunk: string) => string {
	let newlines = 0;
	return (chunk) => {
		let out = '';
		for (const c of chunk) {
			if (c === '\n') {
				if (++newlines > 2) continue;
			} else newlines = 0;
			out += c;
		}
		return out;
	};
}

export interface TraceRun {
	/** bpftrace's path. */
	bpftrace: string;
	args: readonly string[];
	/** What is traced, for messages ("runqlat.bt on pvrun-... (QEMU 123)"). */
	what: string;
	/** Seconds to trace after the probes are attached; undefined: until Ctrl-C. */
	durationS?: number;
	/** The traced QEMU: tracing ends when it does. */
	qemuPid: number;
	out?: Writable;
	err?: Writable;
}

/** Run bpftrace to its end; a PvrunError (one line) when it could not run or failed. */
export async function runTrace(run: TraceRun): Promise<void> {
	const out = run.out ?? process.stdout;
	const err = run.err ?? process.stderr;
	const child = execa(run.bpftrace, [...run.args], {stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false});
	let stderr = '';
	let ending: string | undefined;
	let outputClosed = false;
	const timers: NodeJS.Timeout[] = [];
	/** Ask bpftrace to print its maps and end (once), with what to say on stderr first. */
	const end = (why: string | undefined): void => {
		if (ending !== undefined) return;
		ending = why ?? '';
		if (why) err.write(`pvrun: ${why}\n`);
		child.kill('SIGINT');
		const kill = setTimeout(() => child.kill('SIGKILL'), endGraceMs);
		kill.unref();
		timers.push(kill);
	};
	const squeeze = blankLineSqueezer();
	let attached = false;
	child.stdout?.setEncoding('utf8');
	child.stdout?.on('data', (chunk: string) => {
		if (!outputClosed) out.write(squeeze(chunk));
		// bpftrace prints nothing on stdout before its probes are attached ("Attaching N probes...").
		if (!attached && run.durationS !== undefined) {
			attached = true;
			timers.push(setTimeout(() => end(undefined), run.durationS * 1000));
		}
	});
	child.stderr?.setEncoding('utf8');
	child.stderr?.on('data', (chunk: string) => {
		if (stderr.length < 1 << 20) stderr += chunk;
	});
	// A closed pipe (pvrun trace ... | head): nothing more to show, bpftrace ends.
	const onOutputError = (): void => {
		outputClosed = true;
		end(undefined);
	};
	out.on('error', onOutputError);
	const forward = (signal: NodeJS.Signals): void => {
		// Ctrl-C reaches bpftrace from the terminal too; a second SIGINT changes nothing for it.
		if (ending === undefined) ending = '';
		child.kill(signal);
	};
	const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
	for (const s of signals) process.on(s, forward);
	const watch = setInterval(() => {
		if (!processAlive(run.qemuPid)) end(`QEMU ${run.qemuPid} ended: tracing ends`);
	}, watchMs);
	let result: Awaited<typeof child>;
	try {
		result = await child;
	} finally {
		clearInterval(watch);
		for (const t of timers) clearTimeout(t);
		for (const s of signals) process.off(s, forward);
		out.off('error', onOutputError);
	}
	const said = filterStderr(stderr);
	if (result.failed && (result as {code?: string}).code === 'ENOENT') throw new PvrunError(missingBpftrace, {cause: result});
	if (result.exitCode === 0 || (result.signal === 'SIGINT' && ending !== undefined)) {
		if (said.trim()) err.write(said.endsWith('\n') ? said : `${said}\n`);
		return;
	}
	if (forbidden(said))
		throw new PvrunError(`bpftrace may not load BPF programs here (${firstError(said)}): run pvrun trace as root, on a host that allows BPF (docs/trace.md)`, {
			cause: result,
		});
	if (said.trim()) err.write(said.endsWith('\n') ? said : `${said}\n`);
	const how = result.signal ? `was killed by ${result.signal}` : `failed (exit status ${result.exitCode ?? '?'})`;
	const reason = firstError(said);
	throw new PvrunError(`bpftrace ${how} on ${run.what}${reason ? `: ${reason}` : ''}`, {cause: result});
}
