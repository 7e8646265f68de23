// A private temporary directory that does not outlive the run, even when a
// terminating signal ends the process first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {forwardedSignals as signals, shellStatus} from '../vm/qemu-process.js';

/**
 * Run `fn` with a fresh directory under the system's temporary directory, and
 * remove it when `fn` settles. A SIGINT, SIGTERM or SIGHUP meanwhile removes it
 * too and then ends the process: by the same signal if no one else listens for
 * it, else with the shell's code for it (QEMU children started with a death
 * signal go with it). Without this, ^C on `pvrun bench` left its directory behind. A
 * signal the process ignores (a background job's SIGINT) stays ignored.
 */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
	const remove = () => fs.rmSync(dir, {recursive: true, force: true});
	const off = () => {
		for (const s of signals) process.off(s, onSignal);
	};
	function onSignal(signal: NodeJS.Signals): void {
		off();
		remove();
		// After this signal's other listeners (execa's cleanup, for one) have run: die of it if
		// no one listens any more, else exit with the shell's code for it.
		setImmediate(() => {
			if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
			process.exit(shellStatus({code: null, signal}));
		});
	}
	const ignored = ignoredSignals();
	for (const s of signals) if (!ignored.has(s)) process.on(s, onSignal);
	try {
		return await fn(dir);
	} finally {
		off();
		remove();
	}
}

/** The signals this process ignores (SigIgn in /proc/self/status): listening would undo that. */
function ignoredSignals(): Set<NodeJS.Signals> {
	const out = new Set<NodeJS.Signals>();
	try {
		const hex = /^SigIgn:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
		if (!hex) return out;
		const mask = BigInt(`0x${hex}`);
		for (const s of signals) if ((mask >> BigInt((os.constants.signals[s] ?? 1) - 1)) & 1n) out.add(s);
	} catch {
		// no /proc: listen for all
	}
	return out;
}
