// `pvrun <qemu args>` before anything runs: pvrun's options split from QEMU's, and either
// QEMU's command line unchanged (--pv-off, or a line that runs no guest: passthroughReason)
// or the plan of a VM with the hint channel added. main.ts runs it; --pv-dry-run prints
// `args`. Pure but for the host probe, so tests check real command lines in-process.
import {passthroughReason, vcpuCount} from '../qemu/args.js';
import {maxVcpus} from '../shm/layout.js';
import type {VmConfig} from '../vm/config.js';
import {planVm, type VmPlan} from '../vm/plan.js';
import {probeHost, type HostFacts} from '../vm/probe.js';
import {runtimeRoot, type RuntimeRoot} from '../vm/runtime-dir.js';
import {parsePvOptions, splitArgs} from './pv-options.js';

export type QemuLine =
	| {
			kind: 'plain';
			options: VmConfig;
			/** QEMU's arguments, exactly as given. */
			qemu: string[];
			/** Why a line that runs no guest goes unchanged (undefined: --pv-off). */
			unchanged: string | undefined;
			/** Whether the user is told why even when QEMU runs (a guest runs, without hints). */
			say?: boolean;
			/** The command line that runs: the QEMU binary, then its arguments. */
			args: string[];
	  }
	| {kind: 'vm'; options: VmConfig; qemu: string[]; facts: HostFacts; plan: VmPlan; args: string[]; root: RuntimeRoot};

/**
 * Why a VM with more vCPUs than the shared memory has slots for (256) runs without the hint
 * channel: half its vCPUs without hints would be a VM that behaves unlike itself.
 */
function tooManyVcpus(qemu: readonly string[]): string | undefined {
	const vcpus = vcpuCount(qemu);
	return vcpus > maxVcpus ? `${vcpus} vCPUs are more than the ${maxVcpus} pvrun can give hints to (the VM runs without them)` : undefined;
}

/** What `argv` (pvrun's command line, no subcommand) runs, for the pvrun process `pid` in `cwd`. */
export function qemuLine(argv: readonly string[], pid = process.pid, cwd = process.cwd()): QemuLine {
	const {pv, qemu} = splitArgs(argv);
	const options = parsePvOptions(pv);
	const unchanged = options.off ? undefined : passthroughReason(qemu);
	if (options.off || unchanged !== undefined) return {kind: 'plain', options, qemu, unchanged, args: [options.qemu, ...qemu]};
	const many = tooManyVcpus(qemu);
	if (many !== undefined) return {kind: 'plain', options, qemu, unchanged: many, say: true, args: [options.qemu, ...qemu]};
	const facts = probeHost(options);
	const root = runtimeRoot();
	const plan = planVm(qemu, options, facts, root.dir, {pid, cwd});
	return {kind: 'vm', options, qemu, facts, plan, args: [options.qemu, ...plan.args], root};
}
