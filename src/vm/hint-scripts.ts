// Hint scripts (--pv-hint-script FILE.bt, docs/hint-programs.md#bpftrace-hint-scripts):
// bpftrace scripts pvrun sends to the guest agent after each handshake. The agent runs them
// with the guest's bpftrace and turns their `pvhint affinity <tid> <cpulist>` lines into
// affinity records; what else they print comes back here, line by line, for the event log,
// and a script that fails (one that does not compile) is said on stderr with bpftrace's words.
import fs from 'node:fs';
import path from 'node:path';
import {maxScripts, nameLength, scriptMax, type ScriptOut} from '../agent/protocol.js';
import {UsageError} from '../util/errors.js';

export interface HintScript {
	/** The file's name, as the guest and the event log know it (at most 31 bytes). */
	name: string;
	text: string;
}

/** Read the scripts named on the command line; any defect is a usage error naming the file. */
export function loadHintScripts(files: readonly string[]): HintScript[] {
	if (files.length > maxScripts) throw new UsageError(`--pv-hint-script: at most ${maxScripts} scripts, not ${files.length}`);
	return files.map((file) => {
		let bytes: Buffer;
		try {
			bytes = fs.readFileSync(file);
		} catch (error) {
			throw new UsageError(`--pv-hint-script ${file}: cannot read it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
		}
		if (bytes.length === 0) throw new UsageError(`--pv-hint-script ${file}: the file is empty`);
		if (bytes.length > scriptMax) throw new UsageError(`--pv-hint-script ${file}: ${bytes.length} bytes, over the ${scriptMax / 1024} KiB a script may have`);
		let text: string;
		try {
			text = new TextDecoder('utf-8', {fatal: true}).decode(bytes);
		} catch {
			throw new UsageError(`--pv-hint-script ${file}: not UTF-8 text`);
		}
		if (text.includes('\0')) throw new UsageError(`--pv-hint-script ${file}: not text (a NUL byte)`);
		return {
			name: Buffer.from(path.basename(file))
				.subarray(0, nameLength - 1)
				.toString('latin1'),
			text,
		};
	});
}

/** What the session does with a script's news: an event to log, and perhaps a line for stderr. */
export interface ScriptNews {
	event: 'script' | 'script-output';
	fields: Record<string, string | number>;
	/** Said on stderr (a failed script). */
	warn?: string;
	/** Shown on a terminal (a script started or ended). */
	summary?: string;
}

/** Why the agent refused a `pvhint` line, by the errno it sent (guest-agent/scripts.c). */
const refusedWhy: Record<number, string> = {
	3: 'no such thread', // ESRCH
	22: 'not `pvhint affinity <tid> <cpulist>`', // EINVAL
	34: 'a CPU the guest does not have', // ERANGE
	28: 'the ring is full', // ENOSPC
	19: 'no shared memory', // ENODEV
};

/** The scripts of one session: numbers for the agent, and what their output means. */
export class ScriptRuns {
	private next = 1;
	private readonly running = new Map<number, {name: string; stderr: string[]}>();

	/** A number for a script about to be sent; numbers of earlier handshakes are never reused, so their late lines are ignored. */
	begin(name: string): number {
		const id = this.next++;
		this.running.set(id, {name, stderr: []});
		return id;
	}

	/** The agent could not start it. */
	failed(id: number, name: string, why: string): ScriptNews {
		this.running.delete(id);
		return {event: 'script', fields: {name, state: 'failed', reason: why}, warn: `hint script ${name}: ${why}`};
	}

	started(name: string, pid: number): ScriptNews {
		return {event: 'script', fields: {name, state: 'started', pid}, summary: `hint script ${name}: bpftrace runs in the guest (pid ${pid})`};
	}

	/** A SCRIPT_OUT frame; undefined for a script this session did not send (a stale one). */
	output(out: ScriptOut): ScriptNews | undefined {
		const run = this.running.get(out.script);
		if (!run) return undefined;
		const name = run.name;
		if (out.stream === 'stdout') return {event: 'script-output', fields: {name, stream: 'stdout', line: out.text}};
		if (out.stream === 'stderr') {
			// bpftrace names the agent's copy of the script: name the user's file instead.
			const line = out.text.replace(/\/run\/pvagent-scripts\/\d+\.bt/g, name);
			// bpftrace 0.17 says the first on every start where the limit cannot be raised, harmlessly;
			// the second kind (blank, or only marks under the line it quotes) says nothing alone.
			if (!/couldn't set RLIMIT_MEMLOCK/.test(line) && !/^[\s~^]*$/.test(line)) {
				run.stderr.push(line);
				if (run.stderr.length > 20) run.stderr.shift();
			}
			return {event: 'script-output', fields: {name, stream: 'stderr', line}};
		}
		if (out.stream === 'refused') {
			return {event: 'script-output', fields: {name, stream: 'refused', line: out.text, reason: refusedWhy[out.status] ?? `errno ${out.status}`}};
		}
		this.running.delete(out.script);
		const fields = {name, state: 'exited', status: out.status, hints: out.hints};
		if (out.status === 0 || out.status === 128 + 15) return {event: 'script', fields, summary: `hint script ${name} ended (${out.hints} hints)`};
		const said = run.stderr.join(' / ');
		const message = said.length > 600 ? `${said.slice(0, 600)}…` : said;
		return {event: 'script', fields, warn: `hint script ${name}: bpftrace exited with status ${out.status}${message ? `: ${message}` : ''}`};
	}

	/** The agent went away: its scripts went with it. */
	reset(): void {
		this.running.clear();
	}
}
