// Booting a guest image with plain QEMU and watching its serial console:
// used by the demo and the end-to-end tests. The guest's /init prints
// `readyLine` once it has mounted everything and loaded the channel modules.
import path from 'node:path';
import type {Writable} from 'node:stream';
import {execa} from 'execa';
import {threadsReport} from '../host/threads-report.js';
import {chooseAccel} from '../qemu/accel.js';
import {PvrunError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';

/** The exact line the default guest prints on its serial console when ready. */
export const readyLine = 'pvrun-guest: ready';

/** How long a guest of `vcpus` may take to its ready line: a boot under TCG takes about a second per vCPU beyond the first few. */
export function readyWithinMs(vcpus: number): number {
	return 60_000 + vcpus * 2000;
}

export interface BootOptions {
	kernel: string;
	initrd: string;
	cpus?: number;
	memoryMiB?: number;
	/** A command for the guest to run after it is ready (then it powers off). Commas stand for spaces. */
	run?: string;
	/** Extra QEMU arguments, appended last. */
	qemuArgs?: string[];
	qemu?: string;
	/** Run through this command instead of QEMU (e.g. pvrun: `pvrunCommand()`); it picks the accelerator. */
	launcher?: string[];
	/** Extra kernel command-line words. */
	append?: string[];
	/** Start QEMU (or the launcher) on these host CPUs only (taskset): its threads inherit them. */
	hostCpus?: readonly number[];
}

/**
 * The command that runs this checkout's pvrun, with pvrun options `pvArgs`:
 * Node without the caller's NODE_OPTIONS. A preload set for the caller (a
 * test runner's process tracker, a profiler) would otherwise load into pvrun,
 * and from it into the helper pvrun starts beside QEMU: ~0.2 s more for each.
 */
export function pvrunCommand(...pvArgs: string[]): string[] {
	return ['env', '-u', 'NODE_OPTIONS', process.execPath, path.join(packageRoot, 'dist', 'cli', 'main.js'), ...pvArgs];
}

export interface Guest {
	pid: number;
	/** Console lines so far (without line ends). */
	lines: string[];
	/** What the launcher printed on stderr so far (bounded). */
	stderr(): string;
	/** Resolves with the first console line matching `pattern`; rejects after `timeoutMs` or if QEMU exits first. */
	waitFor(pattern: RegExp | string, timeoutMs: number): Promise<string>;
	/** Resolves with QEMU's exit code (or signal name) when it exits. */
	exited: Promise<number | string>;
	/** Type `text` on the serial console (the guest's command or shell reads it). */
	send(text: string): void;
	/** Stop QEMU (SIGTERM, then SIGKILL after `graceMs`); resolves when it is gone. */
	stop(graceMs?: number): Promise<void>;
}

/** The QEMU command line that boots a guest image headless on the serial console. */
export function bootArgs(options: BootOptions): string[] {
	// tsc=reliable: under TCG the guest kernel finds the vCPUs' TSCs "unsynchronized" (they are
	// threads scheduled at different times, though QEMU derives every TSC from one host clock)
	// and falls back to the HPET, whose every read is an MMIO exit that takes QEMU's big lock.
	// That serialises all clock reads of all vCPUs behind whichever vCPU thread holds the lock
	// (measured: a pinned poller 3x slower, a ping-pong 14x). Every configuration boots this way.
	// no_timer_check: at boot the kernel checks that the PIT's interrupt arrives within a few
	// ticks of a TSC-timed wait, and panics ("IO-APIC + timer doesn't work") if not. Under TCG
	// those interrupts come from QEMU's main thread, which a busy host may not run for that
	// long: seen once in ~150 boots beside other guests. Virtual machines' images skip the check.
	// No `quiet`: the kernel's boot messages are on the console, so a boot that hangs shows how
	// far it got (the guest's /init turns them down to warnings before it says it is ready, so
	// that they do not split the lines tests and benchmarks read). nokaslr: the instruction
	// pointers a hung boot reports (waitFor) are then System.map's addresses.
	const append = ['console=ttyS0', 'panic=-1', 'tsc=reliable', 'no_timer_check', 'nokaslr'];
	if (options.run) {
		if (/\s/.test(options.run)) throw new PvrunError('a guest command cannot contain whitespace: use commas for spaces');
		append.push(`pvrun.run=${options.run}`);
	}
	append.push(...(options.append ?? []));
	return [
		'-nodefaults',
		'-no-user-config',
		...(options.launcher ? [] : chooseAccel('auto').args),
		'-smp',
		String(options.cpus ?? 2),
		'-m',
		String(options.memoryMiB ?? 512),
		'-kernel',
		options.kernel,
		'-initrd',
		options.initrd,
		'-append',
		append.join(' '),
		'-display',
		'none',
		// The serial console, with QEMU's monitor behind Ctrl-A c: what waitFor asks when a boot hangs.
		'-serial',
		'mon:stdio',
		'-no-reboot',
		...(options.qemuArgs ?? []),
	];
}

/**
 * Where each vCPU is, from QEMU's monitor on the console (Ctrl-A c, `info registers -a`, and
 * back): `vCPU 0 at ffffffff81a0b2c5, vCPU 1 halted at ...`, or why not. The monitor answers
 * only once QEMU's big lock is free, so a vCPU that holds it shows as no answer in 2 s.
 */
async function vcpuRegisters(stdin: Writable | null, lines: readonly string[], cpus: number): Promise<string> {
	if (!stdin?.writable) return 'vCPU registers: no monitor';
	const from = lines.length;
	stdin.write('\x01cinfo registers -a\n');
	const deadline = performance.now() + 2000;
	let found: string[] = [];
	while (found.length < cpus && performance.now() < deadline) {
		await new Promise((resolve) => setTimeout(resolve, 100));
		found = parseRegisters(lines.slice(from));
	}
	stdin.write('\x01c');
	return found.length ? `vCPU registers: ${found.join(', ')}` : 'vCPU registers: the monitor did not answer in 2 s';
}

/** `vCPU N [halted ]at RIP` for each CPU in the lines of `info registers -a`. */
function parseRegisters(lines: readonly string[]): string[] {
	const out: string[] = [];
	let cpu = '?';
	for (const line of lines) {
		const header = /^CPU#(\d+)/.exec(line);
		if (header?.[1]) cpu = header[1];
		const rip = /\bRIP=([0-9a-f]{16})\b.*\bHLT=(\d)/.exec(line);
		if (rip?.[1]) out.push(`vCPU ${cpu} ${rip[2] === '1' ? 'halted ' : ''}at ${rip[1]}`);
	}
	return out;
}

/** Start QEMU on a guest image; the caller must `stop()` it (tests: in teardown). */
export function bootGuest(options: BootOptions): Guest {
	const [qemu = options.qemu ?? 'qemu-system-x86_64', ...rest] = options.launcher ?? [];
	const [command, ...prefix] = options.hostCpus ? ['taskset', '-c', options.hostCpus.join(','), qemu, ...rest] : [qemu, ...rest];
	const child = execa(command ?? qemu, [...prefix, ...bootArgs(options)], {
		stdin: 'pipe',
		stdout: 'pipe',
		stderr: 'pipe',
		reject: false,
		buffer: false,
	});
	if (child.pid === undefined) throw new PvrunError(`${command} could not be started: run make setup`);
	const lines: string[] = [];
	const watchers = new Set<(line: string) => void>();
	let partial = '';
	child.stdout?.setEncoding('utf8');
	child.stdout?.on('data', (chunk: string) => {
		partial += chunk;
		const parts = partial.split('\n');
		partial = parts.pop() ?? '';
		for (const raw of parts) {
			const line = raw.replace(/\r$/, '');
			lines.push(line);
			for (const watch of watchers) watch(line);
		}
	});
	let stderr = '';
	child.stderr?.setEncoding('utf8');
	child.stderr?.on('data', (chunk: string) => {
		if (stderr.length < 64 * 1024) stderr += chunk;
	});
	const exited = child.then((result) => result.signal ?? result.exitCode ?? -1);
	let gone = false;
	void exited.then(() => {
		gone = true;
	});

	return {
		pid: child.pid,
		lines,
		stderr: () => stderr,
		exited,
		send(text) {
			if (child.stdin?.writable) child.stdin.write(text);
		},
		waitFor(pattern, timeoutMs) {
			const matches = (line: string) => (typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line));
			const seen = lines.find(matches);
			if (seen !== undefined) return Promise.resolve(seen);
			return new Promise((resolve, reject) => {
				const done = (fn: () => void) => {
					clearTimeout(timer);
					watchers.delete(watch);
					fn();
				};
				const watch = (line: string) => {
					if (matches(line)) done(() => resolve(line));
				};
				const timer = setTimeout(() => {
					watchers.delete(watch);
					// An empty console (QEMU or the guest hung before init) says more with QEMU's own
					// words, and with what its threads did on the host over the next second.
					const said = stderr.trim().split('\n').slice(-3).join(' | ');
					const shown = lines.length ? `last lines:\n${lines.slice(-15).join('\n')}` : 'the console printed nothing';
					void Promise.all([threadsReport(child.pid ?? 0), vcpuRegisters(child.stdin, lines, options.cpus ?? 2)]).then(([host, vcpus]) =>
						done(() =>
							reject(
								new PvrunError(
									`guest console did not show ${String(pattern)} within ${timeoutMs} ms; ${shown}${said ? `\nQEMU's stderr: ${said}` : ''}${host ? `\n${host}` : ''}\n${vcpus}`,
								),
							),
						),
					);
				}, timeoutMs);
				watchers.add(watch);
				void exited.then((code) =>
					done(() => reject(new PvrunError(`QEMU exited (${code}) before the console showed ${String(pattern)}: ${stderr.trim().split('\n')[0] ?? ''}`))),
				);
			});
		},
		async stop(graceMs = 3000) {
			if (gone) return;
			child.kill('SIGTERM');
			const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
			await exited;
			clearTimeout(timer);
		},
	};
}
