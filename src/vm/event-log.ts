// The decision log: one JSON object per line (--pv-log FILE; the format, its
// version and every event: docs/event-log.md, docs/event-log.schema.json), and
// on a terminal a one-line summary of each decision on stderr (not when that
// terminal is the guest's console: docs/cli.md). Warnings always go to stderr.
import fs from 'node:fs';
import {TokenBucket} from '../util/token-bucket.js';

export type LogFields = Record<string, string | number | boolean | null | number[] | Record<string, number> | Record<string, number | boolean>[]>;

/** The format of the lines, `v` on every line: raised when a field changes meaning or goes. */
export const eventLogVersion = 1;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Each event's `level`; events not named are `info`. */
const eventLevels: Readonly<Record<string, LogLevel>> = {
	'internal-error': 'error',
	'pin-error': 'error',
	warning: 'warn',
	stall: 'warn',
	'cpu-hold': 'warn',
	hint: 'debug',
	applied: 'debug',
	counters: 'debug',
};

/** The level of an `event` line. */
export function levelOf(event: string): LogLevel {
	return eventLevels[event] ?? 'info';
}

/**
 * A log file grows to this many bytes at most; then it is renamed FILE.1 (replacing an older
 * one) and FILE starts again, so that a VM's log takes at most twice this on disk.
 */
export const logMaxBytes = 64 * 1024 * 1024;

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

/**
 * Lines of one event kind: at most `burst` at once, then `perSecond` a second. A guest can
 * drive most kinds (a record flood, an agent that opens and closes its port); the lines
 * beyond the budget are not written but counted, and a `suppressed` line gives the counts at
 * most once a second. A well-behaved guest stays far below it.
 */
export const logBudget = {burst: 100, perSecond: 20};

/**
 * Lines a second per kind from PVRUN_LOG_RATE (a positive integer; `unlimited` or 0 for no
 * budget, as `pvrun bench hint-latency` runs), else `logBudget.perSecond`. The burst is five
 * seconds' worth, at least `logBudget.burst`.
 */
export function logRateFromEnv(value: string | undefined = process.env['PVRUN_LOG_RATE']): number {
	if (value === undefined || value === '') return logBudget.perSecond;
	if (value === 'unlimited' || value === '0') return Infinity;
	const n = Number(value);
	return Number.isInteger(n) && n > 0 ? n : logBudget.perSecond;
}

/** Kinds always written: a VM's first and last word. */
const unbudgeted = new Set(['start', 'exit', 'suppressed', 'hint-summary', 'log-rotated']);

export interface EventLogOptions {
	/** A monotonic clock, ms (tests give their own). */
	now?: () => number;
	/** Lines a second per kind (default: logRateFromEnv()). */
	perSecond?: number;
	/** The VM's id (its run directory's name), `vm` on every line. */
	vm?: string;
	/** The size at which the file is rotated (default logMaxBytes). */
	maxBytes?: number;
}

export class EventLog {
	private fd: number | undefined;
	/** Bytes in the file now, when it is a regular file (undefined: never rotated). */
	private bytes: number | undefined;
	private readonly maxBytes: number;
	private readonly vm: string | undefined;
	private readonly now: () => number;
	private readonly perSecond: number;
	private readonly burst: number;
	private readonly started: number;
	private closed = false;
	private failed = false;
	private readonly buckets = new Map<string, TokenBucket>();
	/** Lines left out since `suppressedSince`, by kind. */
	private suppressed = new Map<string, number>();
	private suppressedSince = 0;
	private summaryTimer: NodeJS.Timeout | undefined;

	constructor(
		private readonly file: string | undefined,
		private readonly summaries: boolean,
		options: EventLogOptions = {},
	) {
		this.fd = file ? fs.openSync(file, 'a') : undefined;
		if (this.fd !== undefined) {
			const stat = fs.fstatSync(this.fd);
			if (stat.isFile()) this.bytes = stat.size;
		}
		this.maxBytes = options.maxBytes ?? logMaxBytes;
		this.vm = options.vm;
		this.now = options.now ?? (() => performance.now());
		this.perSecond = options.perSecond ?? logRateFromEnv();
		this.burst = Math.max(logBudget.burst, 5 * this.perSecond);
		this.started = this.now();
	}

	/**
	 * Record one event; `summary` is printed on a terminal. A no-op once closed (late async
	 * callbacks). False when the kind is over its budget (counted for the next `suppressed` line).
	 */
	write(event: string, fields: LogFields, summary?: string): boolean {
		if (this.closed) return false;
		if (!this.admit(event)) return false;
		this.writeLine(event, fields);
		if (summary && this.summaries) writeStderr(`pvrun: ${summary}\r\n`);
		return true;
	}

	/** An event a user must hear of: logged, and `message` on stderr whatever the terminal (as a warning is), within the budget. */
	say(event: string, fields: LogFields, message: string): void {
		if (this.write(event, fields)) writeStderr(`pvrun: ${message}\n`);
	}

	/** A warning: logged, and on stderr whether or not summaries are shown (terminal or not, console or not), within the budget. */
	warn(message: string): void {
		if (this.write('warning', {message})) writeStderr(`pvrun: ${message}\n`);
	}

	close(): void {
		if (this.closed) return;
		this.writeSuppressed();
		this.closed = true;
		if (this.fd !== undefined) fs.closeSync(this.fd);
	}

	/** Whether a line of `event` fits its kind's budget; counts it if not. */
	private admit(event: string): boolean {
		if (unbudgeted.has(event) || this.perSecond === Infinity) {
			// What was left out comes before the VM's last word.
			if (event === 'exit') this.writeSuppressed();
			return true;
		}
		const now = this.now();
		let b = this.buckets.get(event);
		if (!b) this.buckets.set(event, (b = new TokenBucket(this.burst, this.perSecond / 1000, this.now)));
		if (this.suppressed.size > 0 && now - this.suppressedSince >= 1000) this.writeSuppressed();
		if (b.tokens >= 1) {
			b.spend(1);
			return true;
		}
		if (this.suppressed.size === 0) {
			this.suppressedSince = now;
			// A flood that stops is still summarised within a second or so.
			this.summaryTimer = setTimeout(() => this.writeSuppressed(), 1000);
			this.summaryTimer.unref();
		}
		this.suppressed.set(event, (this.suppressed.get(event) ?? 0) + 1);
		return false;
	}

	/** The `suppressed` line: how many lines of each kind were left out, over how long. */
	private writeSuppressed(): void {
		clearTimeout(this.summaryTimer);
		this.summaryTimer = undefined;
		if (this.closed || this.suppressed.size === 0) return;
		const lines = Object.fromEntries(this.suppressed);
		const seconds = Math.round(this.now() - this.suppressedSince) / 1000;
		this.suppressed = new Map();
		this.writeLine('suppressed', {seconds, lines});
	}

	/** FILE becomes FILE.1 (an older FILE.1 goes) and FILE starts again with a `log-rotated` line. */
	private rotate(): void {
		if (this.fd === undefined || this.file === undefined) return;
		const previous = `${this.file}.1`;
		fs.closeSync(this.fd);
		this.fd = undefined;
		fs.renameSync(this.file, previous);
		this.fd = fs.openSync(this.file, 'a');
		this.bytes = 0;
		this.writeLine('log-rotated', {previous, maxBytes: this.maxBytes});
	}

	private writeLine(event: string, fields: LogFields): void {
		if (this.fd === undefined || this.failed) return;
		const line = `${JSON.stringify({
			t: new Date().toISOString(),
			ms: Math.round((this.now() - this.started) * 1000) / 1000,
			v: eventLogVersion,
			...(this.vm === undefined ? {} : {vm: this.vm}),
			level: levelOf(event),
			event,
			...fields,
		})}\n`;
		try {
			if (this.bytes !== undefined && this.bytes > 0 && this.bytes + Buffer.byteLength(line) > this.maxBytes) this.rotate();
			const n = fs.writeSync(this.fd, line);
			if (this.bytes !== undefined) this.bytes += n;
		} catch (error) {
			// A full disk must not take the VM down with pvrun: stop logging, say so once.
			this.failed = true;
			writeStderr(`pvrun: event log stopped: ${(error as Error).message}\n`);
		}
	}
}
