// The decision log: one JSON object per line (--pv-log FILE), and on a
// terminal a one-line summary of each decision on stderr (not when that
// terminal is the guest's console: docs/cli.md). Warnings always go to stderr.
import fs from 'node:fs';

export type LogFields = Record<string, string | number | boolean | null | number[] | Record<string, number> | Record<string, number | boolean>[]>;

/** One decoded line of an event log. */
export interface LoggedEvent {
	event: string;
	[field: string]: unknown;
}

/** Every event in a log file written by --pv-log (none if the file does not exist yet). */
export function readEventLog(file: string): LoggedEvent[] {
	if (!fs.existsSync(file)) return [];
	return fs
		.readFileSync(file, 'utf8')
		.split('\n')
		.filter(Boolean)
		.map((line) => JSON.parse(line) as LoggedEvent);
}

/** The QEMU pid and vCPU threads (index order) pvrun logged, once it has logged both. */
export function loggedVm(events: LoggedEvent[]): {qemuPid: number; threads: number[]} | undefined {
	const start = events.find((e) => e.event === 'start');
	const vcpus = events.filter((e) => e.event === 'vcpus').at(-1);
	if (!start || !vcpus) return undefined;
	return {qemuPid: Number(start['qemuPid']), threads: (vcpus['threads'] ?? []) as number[]};
}

/**
 * Write `text` to stderr with one write(2), never through process.stderr:
 * for a pipe, Node would set O_NONBLOCK on it, and QEMU, which shares it,
 * would then lose output whenever the pipe is full. A stderr that is gone or
 * full drops the line; pvrun carries on.
 */
export function writeStderr(text: string): void {
	try {
		fs.writeSync(2, text);
	} catch {
		// nobody is reading
	}
}

export class EventLog {
	private readonly fd: number | undefined;
	private readonly started = performance.now();
	private closed = false;
	private failed = false;

	constructor(
		file: string | undefined,
		private readonly summaries: boolean,
	) {
		this.fd = file ? fs.openSync(file, 'a') : undefined;
	}

	/** Record one event; `summary` is printed on a terminal. A no-op once closed (late async callbacks). */
	write(event: string, fields: LogFields, summary?: string): void {
		if (this.closed) return;
		if (this.fd !== undefined && !this.failed) {
			const line = JSON.stringify({t: new Date().toISOString(), ms: Math.round((performance.now() - this.started) * 1000) / 1000, event, ...fields});
			try {
				fs.writeSync(this.fd, `${line}\n`);
			} catch (error) {
				// A full disk must not take the VM down with pvrun: stop logging, say so once.
				this.failed = true;
				writeStderr(`pvrun: event log stopped: ${(error as Error).message}\n`);
			}
		}
		if (summary && this.summaries) writeStderr(`pvrun: ${summary}\r\n`);
	}

	/** An event a user must hear of: logged, and `message` on stderr whatever the terminal (as a warning is). */
	say(event: string, fields: LogFields, message: string): void {
		if (this.closed) return;
		this.write(event, fields);
		writeStderr(`pvrun: ${message}\n`);
	}

	/** A warning: logged, and on stderr whether or not summaries are shown (terminal or not, console or not). */
	warn(message: string): void {
		if (this.closed) return;
		this.write('warning', {message});
		writeStderr(`pvrun: ${message}\n`);
	}

	close(): void {
		if (this.closed) return;
		this.closed = true;
		if (this.fd !== undefined) fs.closeSync(this.fd);
	}
}
