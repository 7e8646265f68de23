// Running a VM through pvrun: QEMU with the user's arguments first, then the
// hint channel (IVSHMEM area, agent virtio-serial port, QMP socket). pvrun
// becomes QEMU (exec in place: the caller's pid is QEMU's, with the console
// and the descriptors pvrun inherited) and a helper process it started just
// before serves the hint channel (src/vm/helper.ts, src/vm/session.ts) and
// removes the files when QEMU ends (docs/lifecycle.md). A QEMU that
// daemonizes gets a detached pvrun instead (src/vm/daemon.ts).
import path from 'node:path';
import tty from 'node:tty';
import {usesStdio} from '../qemu/args.js';
import {firstLine, UsageError} from '../util/errors.js';
import type {VmConfig} from './config.js';
import {runDaemonized} from './daemon.js';
import {EventLog, writeStderr} from './event-log.js';
import {execQemu} from './exec.js';
import {startHelper, type HelperOrders, type StartedHelper} from './helper.js';
import {planVm, type VmPlan} from './plan.js';
import type {HostFacts} from './probe.js';
import {checkPrograms} from './qemu-process.js';
import {createRunFiles, removeRunFiles} from './session.js';
import {ensureRuntimeRoot, type RuntimeRoot} from './runtime-dir.js';
import {removeStaleRuns} from './stale.js';
import {writeVmState} from './state.js';

/** Run QEMU exactly as given (--pv-off, and command lines that run no guest): pvrun becomes QEMU. */
export function runPlain(qemu: string, args: string[]): never {
	return execQemu(qemu, args);
}

/**
 * Run a VM with the hint channel. Without -daemonize pvrun becomes QEMU
 * (QEMU keeps the pid the caller started) and a helper process serves the
 * hint channel (src/vm/helper.ts); then this never returns. With -daemonize,
 * resolves to the status of QEMU's first process (src/vm/daemon.ts).
 */
export async function runVm(plan: VmPlan, options: VmConfig, facts: HostFacts, root: RuntimeRoot): Promise<number> {
	ensureRuntimeRoot(root);
	// Left by a pvrun that was killed (SIGKILL cannot be cleaned up after): gone before we add ours.
	await removeStaleRuns(path.dirname(plan.runDir));
	// The detached pvrun owns the run directory: the same plan for its pid (pure: nothing probed again).
	if (plan.daemonize) return runDaemonized(options, (pid) => planVm(plan.qemuArgs, options, facts, path.dirname(plan.runDir), {pid, cwd: process.cwd()}));
	checkPrograms(options.qemu);
	const summaries = showSummaries(options, plan);
	const area = createRunFiles(plan);
	let helper: StartedHelper;
	try {
		const orders: HelperOrders = {plan, summaries, qemuPid: process.pid, hostEpoch: area.hostEpoch.toString()};
		if (options.log !== undefined) orders.log = path.resolve(options.log);
		helper = startHelper(orders);
	} catch (error) {
		removeRunFiles(plan, area);
		throw error;
	}
	area.unmap();
	writeVmState(plan, options, {qemuPid: process.pid, pvrunPid: helper.pid});
	if (plan.accelNote) writeStderr(`pvrun: accelerator: ${plan.accelNote}\n`);
	// Fails only if QEMU vanished since checkPrograms: the helper sees this process end and removes the files.
	return execQemu(options.qemu, plan.args, [helper.qemuEnd]);
}

/**
 * Whether decision summaries go to stderr: when it is a terminal, but not
 * when that terminal is the guest's console (QEMU writes the guest's output
 * there as it comes, and a summary would cut one of the guest's lines in
 * two: docs/cli.md). Checks that the event log (--pv-log) opens: a PvrunError
 * naming the file if not.
 */
function showSummaries(options: VmConfig, plan: VmPlan): boolean {
	// tty.isatty, not process.stdout: creating Node's stream on a pipe would make it non-blocking for QEMU too.
	const consoleHere = usesStdio(plan.qemuArgs) && tty.isatty(1);
	try {
		new EventLog(options.log, false).close();
	} catch (error) {
		throw new UsageError(`cannot open the event log ${options.log ?? ''} (--pv-log): ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`, {
			cause: error,
		});
	}
	return tty.isatty(2) && !consoleHere;
}
