// Which VM `pvrun trace` traces: the pvrun VM named by its id, name, or QEMU or pvrun pid, as
// `pvrun top VM` takes it (from the state files: src/vm/state.ts), or the only one running;
// or, given a pid that is no pvrun VM's, a plain QEMU whose vCPU threads carry their names.
import fs from 'node:fs';
import {PvrunError, UsageError} from '../util/errors.js';
import {allRuntimeRoots, runtimeRoot} from '../vm/runtime-dir.js';
import {byStart, isVmNamed, readVmStates, type VmStatus} from '../vm/state.js';
import type {TraceTarget} from './scripts.js';

/** A traced VM: the scripts' parameters, and what to call it. */
export interface ChosenVm extends TraceTarget {
	label: string;
}

/** A QEMU vCPU thread's name with -name ...,debug-threads=on: what the scripts look for. */
export const vcpuComm = /^CPU \d+\/(TCG|KVM)$/;

/** A pvrun VM's label: its id, with its name if it has one. */
const labelOf = (vm: VmStatus): string => `${vm.id}${vm.name ? ` "${vm.name}"` : ''} (QEMU ${vm.qemuPid})`;

/**
 * The VM among `vms` (the running ones, as listed) that `wanted` names: by id, name, or QEMU or
 * pvrun pid; the only one when `wanted` is not given. undefined when `wanted` names none;
 * a UsageError when it is not given and there are several, a PvrunError when there is none.
 */
export function chooseVm(vms: readonly VmStatus[], wanted: string | undefined, roots: readonly string[]): ChosenVm | undefined {
	const running = vms.filter((vm) => vm.qemuRunning);
	const pick = (vm: VmStatus): ChosenVm => ({qemuPid: vm.qemuPid, pvrunPid: vm.pvrunPid, label: labelOf(vm)});
	if (wanted === undefined) {
		const [only] = running;
		if (running.length === 1 && only) return pick(only);
		if (running.length === 0) throw new PvrunError(`no pvrun VM is running (looked in ${roots.join(', ')}); --vm PID traces a plain QEMU`);
		throw new UsageError(`${running.length} pvrun VMs are running: say which with --vm (${running.map((vm) => vm.name ?? vm.id).join(', ')})`);
	}
	const matches = running.filter((vm) => isVmNamed(vm, wanted));
	const [first] = matches;
	if (matches.length > 1) throw new UsageError(`${matches.length} pvrun VMs are "${wanted}": say which by id or QEMU pid`);
	return first ? pick(first) : undefined;
}

/** The names of process `pid`'s threads, by thread id (empty when it is gone or not readable). */
export function threadNames(pid: number, proc = '/proc'): Map<number, string> {
	const names = new Map<number, string>();
	let tids: string[];
	try {
		tids = fs.readdirSync(`${proc}/${pid}/task`);
	} catch {
		return names;
	}
	for (const tid of tids)
		try {
			names.set(Number(tid), fs.readFileSync(`${proc}/${pid}/task/${tid}/comm`, 'utf8').trim());
		} catch {
			// the thread ended meanwhile
		}
	return names;
}

/** A plain QEMU by pid: its vCPU threads must carry their names for the scripts to find them. */
export function plainQemu(pid: number, proc = '/proc'): ChosenVm {
	const names = threadNames(pid, proc);
	if (names.size === 0) throw new PvrunError(`no pvrun VM is ${pid}, and no process ${pid} is running`);
	if (![...names.values()].some((n) => vcpuComm.test(n)))
		throw new PvrunError(`no pvrun VM is ${pid}, and process ${pid} has no thread named "CPU N/TCG" or "CPU N/KVM" (a QEMU needs -name NAME,debug-threads=on)`);
	return {qemuPid: pid, label: `QEMU ${pid} (not pvrun's)`};
}

/**
 * The VM `--vm` names (or the only one running), among the caller's pvrun VMs or, with `all`,
 * every user's; a number that is no pvrun VM's is taken as a plain QEMU's pid.
 */
export function traceTarget(options: {vm?: string; all: boolean}, proc = '/proc'): ChosenVm {
	const roots = options.all ? allRuntimeRoots() : [runtimeRoot().dir];
	const vms = roots.flatMap((root) => readVmStates(root).vms).sort(byStart);
	const chosen = chooseVm(vms, options.vm, roots);
	if (chosen) return chosen;
	const wanted = options.vm ?? '';
	if (/^[1-9]\d*$/.test(wanted)) return plainQemu(Number(wanted), proc);
	throw new PvrunError(`no pvrun VM is "${wanted}" (looked in ${roots.join(', ')}${options.all ? '' : "; --all looks in every user's"})`);
}
