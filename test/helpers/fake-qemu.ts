// pvrun with a stand-in for QEMU, for the tests of what pvrun does around
// QEMU (src/vm/launch.ts, src/vm/daemon.ts) without booting a guest. The fake
// is a bash script: it notes its pid and arguments, then behaves as the
// FAKE_QEMU mode says (below). pvrun runs from dist/ (`make build`) with a
// TMPDIR of the test's own, so its run directories and its sweep of stale
// ones stay there, and with a tag in its environment that every process it
// starts inherits (the helper or the detached pvrun, the fake and what the
// fake forks): a test finds them all by it, asserts that none is left, and
// kills the ones that are at teardown.
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {Test} from 'tap';
import {procStatFields} from '../../src/host/proc.js';
import {packageRoot} from '../../src/util/paths.js';
import {killIfRunning, processesWhere} from './host-view.js';

/**
 * What the fake QEMU does once it has noted its pid and arguments:
 * - run: runs on in the foreground (a VM), under the same pid (`exec sleep 30`)
 * - up: -daemonize: a background process (stdio on /dev/null, its command line
 *   naming the shared memory as QEMU's does) writes its pid to the last
 *   -pidfile and runs on; the first process exits 0 once the pidfile is there
 * - late: as up, but the first process exits at once and the pidfile comes 0.5 s later
 * - hold: as up, once the test creates the file `go` in the sandbox
 * - fail: one line on stderr, exit 1 (QEMU refusing its arguments)
 * - signal: killed by SIGTERM
 * - nopid: exits 0 without a pidfile
 * - garbage: writes `not-a-pid` to the pidfile and exits 0
 * - foreign: writes $FAKE_PID (a live process that is not this VM's) to the pidfile and exits 0
 */
export type FakeMode = 'run' | 'up' | 'late' | 'hold' | 'fail' | 'signal' | 'nopid' | 'garbage' | 'foreign';

/** The fake's last line of qemu.args: the file is whole. */
const argsEnd = '.end';

const fakeQemu = `#!/bin/bash
# A stand-in for qemu-system-x86_64 (test/helpers/fake-qemu.ts).
# bash's own printf and a last line that says the file is whole: a mv(1) here
# would be a child process, tagged, that a test could see still exiting.
printf '%s\\n' "$$" "$@" '${argsEnd}' > "$FAKE_DIR/qemu.args"
pidfile=
prev=
for a in "$@"; do
	[ "$prev" = -pidfile ] && pidfile=$a
	prev=$a
done
args="$*"
daemon() {
	(
		[ -n "$1" ] && sleep "$1"
		echo "$BASHPID" > "$pidfile.new" && mv "$pidfile.new" "$pidfile"
		exec -a "fake-qemu $args" sleep 30
	) </dev/null >/dev/null 2>&1 &
}
wait_for() {
	for _ in $(seq 500); do
		[ -s "$1" ] && return 0
		sleep 0.01
	done
	return 1
}
case $FAKE_QEMU in
run) exec sleep 30 ;;
up) daemon && wait_for "$pidfile" ;;
late) daemon 0.5 ;;
hold) wait_for "$FAKE_DIR/go" && daemon && wait_for "$pidfile" ;;
fail) echo 'fake-qemu: cannot use stdio with -daemonize' >&2; exit 1 ;;
signal) kill -TERM $$ ;;
nopid) exit 0 ;;
garbage) echo not-a-pid > "$pidfile" ;;
foreign) echo "$FAKE_PID" > "$pidfile" ;;
*) echo "fake-qemu: no mode FAKE_QEMU=$FAKE_QEMU" >&2; exit 99 ;;
esac
`;

/**
 * This checkout's pvrun, as pvrunCommand() (src/guest/boot.ts) runs it,
 * without loading that module (execa: most of a second). env(1) drops
 * NODE_OPTIONS: the test runner's process tracker puts it back into the
 * environment of whatever a test spawns, and would load into pvrun, its
 * helper and its detached process (tripling their start-up).
 */
const pvrunCommand = (...args: string[]): string[] => [
	'env',
	'-u',
	'NODE_OPTIONS',
	process.execPath,
	path.join(packageRoot, 'dist', 'cli', 'main.js'),
	...args,
];

/** The environment variable that tags a sandbox's processes. */
const tagName = 'PVRUN_TEST_SANDBOX';

/** How a pvrun run ended, and what it wrote. */
export interface Ran {
	pid: number;
	code: number | null;
	signal: NodeJS.Signals | null;
	stdout: string;
	stderr: string;
}

export interface Started {
	/** The pid started (pvrun's, and QEMU's once pvrun has exec'd it). */
	pid: number;
	stderr(): string;
	/** Settles once it has exited and stdout and stderr are closed by every holder (QEMU, the helper); killed after 15 s. */
	done: Promise<Ran>;
}

export interface StartOptions {
	mode?: FakeMode;
	/** The QEMU binary pvrun is given (--pv-qemu): the fake unless said. */
	qemu?: string;
	/** More environment (TMPDIR, PVRUN_RUNTIME_DIR...). */
	env?: Record<string, string>;
	/** Run pvrun's command through this (`script` for a terminal). */
	wrap?: (command: string[]) => string[];
}

/** A private directory, TMPDIR and process tag for one test's pvrun runs; cleaned up when `t` ends. */
export class Sandbox {
	/** The test's directory: the fake QEMU, its notes, pidfiles, event logs. */
	readonly dir: string;
	/** pvrun's TMPDIR and runtime root (PVRUN_RUNTIME_DIR): its run directories. */
	readonly tmp: string;
	/** The fake QEMU. */
	readonly qemu: string;
	private readonly tag = crypto.randomBytes(6).toString('hex');
	/** Every pid known to be this sandbox's (teardown kills those still running and removes their shared memory). */
	private readonly pids = new Set<number>();

	constructor(t: Pick<Test, 'teardown'>) {
		this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-fake-qemu-'));
		this.tmp = path.join(this.dir, 'tmp');
		fs.mkdirSync(this.tmp);
		this.qemu = path.join(this.dir, 'qemu-system-x86_64');
		fs.writeFileSync(this.qemu, fakeQemu, {mode: 0o755});
		t.teardown(() => {
			for (const pid of [...this.pids, ...this.processes()]) if (pid > 1) killIfRunning(pid);
			const names = new Set(fs.existsSync(this.tmp) ? fs.readdirSync(this.tmp) : []);
			const shm = this.qemuRan()?.shm;
			if (shm !== undefined) names.add(path.basename(shm));
			for (const name of fs.readdirSync('/dev/shm')) {
				const pid = Number(/^pvrun-(\d+)-[0-9a-f]+$/.exec(name)?.[1] ?? 0);
				if (names.has(name) || this.pids.has(pid)) fs.rmSync(path.join('/dev/shm', name), {force: true});
			}
			fs.rmSync(this.dir, {recursive: true, force: true});
		});
	}

	/** Start pvrun with `args` (its own --pv- options and QEMU's) and the fake QEMU. */
	start(args: string[], options: StartOptions = {}): Started {
		const env: NodeJS.ProcessEnv = {
			...process.env,
			TMPDIR: this.tmp,
			PVRUN_RUNTIME_DIR: this.tmp,
			FAKE_DIR: this.dir,
			FAKE_QEMU: options.mode ?? 'run',
			[tagName]: this.tag,
			...options.env,
		};
		const pvrun = pvrunCommand('--pv-qemu', options.qemu ?? this.qemu, ...args);
		const [file = 'env', ...rest] = options.wrap ? options.wrap(pvrun) : pvrun;
		const child = spawn(file, rest, {stdio: ['ignore', 'pipe', 'pipe'], env});
		const pid = child.pid ?? 0;
		this.pids.add(pid);
		let stdout = '';
		let stderr = '';
		child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
		child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
		const done = new Promise<Ran>((resolve) => {
			const timer = setTimeout(() => {
				for (const p of [pid, ...this.processes()]) killIfRunning(p);
			}, 15_000);
			child.once('close', (code, signal) => {
				clearTimeout(timer);
				resolve({pid, code, signal, stdout, stderr});
			});
		});
		return {pid, stderr: () => stderr, done};
	}

	/** Run pvrun with `args` to its end (bounded: see Started.done). */
	run(args: string[], options: StartOptions = {}): Promise<Ran> {
		return this.start(args, options).done;
	}

	/** The running processes started with this sandbox's tag in their environment. */
	processes(): number[] {
		const entry = `${tagName}=${this.tag}`;
		const found = processesWhere('environ', (environ) => environ.split('\0').includes(entry));
		for (const pid of found) this.pids.add(pid);
		return found;
	}

	/** The processes among processes() that run `script` (dist/vm/daemon-entry.js...). */
	running(script: string): number[] {
		return this.processes().filter((pid) => commandLine(pid).some((arg) => arg.endsWith(script)));
	}

	/**
	 * What the fake QEMU noted, if it ran: its pid, its arguments, and the run
	 * directory and shared memory pvrun gave it (from its -qmp socket and the
	 * memory backend's mem-path).
	 */
	qemuRan(): {pid: number; args: string[]; shm: string; runDir: string; id: string} | undefined {
		let lines: string[];
		try {
			lines = fs.readFileSync(path.join(this.dir, 'qemu.args'), 'utf8').replace(/\n$/, '').split('\n');
		} catch {
			return undefined;
		}
		if (lines.pop() !== argsEnd) return undefined;
		const [pid = '0', ...args] = lines;
		const shm = args.map((a) => /mem-path=([^,]+)/.exec(a)?.[1]).find((p) => p !== undefined) ?? '';
		const qmp = args[args.indexOf('-qmp') + 1] ?? '';
		const runDir = path.dirname(/^unix:([^,]+)/.exec(qmp)?.[1] ?? '');
		const id = path.basename(shm);
		const owner = Number(/^pvrun-(\d+)-/.exec(id)?.[1] ?? 0);
		if (owner > 0) this.pids.add(owner);
		return {pid: Number(pid), args, shm, runDir, id};
	}
}

/** The command line of process `pid` as its arguments ([] if it is gone). */
export function commandLine(pid: number): string[] {
	try {
		return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
	} catch {
		return [];
	}
}

/** The session process `pid` is in (/proc/<pid>/stat field 6; 0 if it is gone). */
export function sessionOf(pid: number): number {
	return Number(procStatFields(pid)?.[6] ?? 0);
}

/** The pid in a run directory's or shared memory's name (pvrun-<pid>-<hex>), 0 if none. */
export function ownerOf(id: string): number {
	return Number(/^pvrun-(\d+)-[0-9a-f]+$/.exec(path.basename(id))?.[1] ?? 0);
}

/**
 * Send `name` to process `pid`. Only to one process: 0 and -1 (process.kill's
 * whole process group and every process) are refused, as a pid read from a
 * file that was not written yet would be.
 */
export function signal(pid: number, name: NodeJS.Signals): void {
	if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`no process to signal: pid ${pid}`);
	process.kill(pid, name);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
