// `pvrun status [--json]`: the pvrun VMs running on this machine, from the
// state files their pvrun processes keep (src/vm/state.ts). Directories left
// by a pvrun that is gone, or not readable, are reported on stderr.
import os from 'node:os';
import {formatCpuList} from '../host/cpus.js';
import {readVmStates, type CsStatus, type VcpuPlacement, type VmStatus} from '../vm/state.js';

/** Print the VMs (a table, or JSON with --json) and what was skipped; resolves to the exit code. */
export function statusCommand(options: {json: boolean; root?: string}): number {
	const root = options.root ?? os.tmpdir();
	const {vms, skipped} = readVmStates(root);
	if (options.json) {
		process.stdout.write(`${JSON.stringify({vms, skipped}, null, 2)}\n`);
		return 0;
	}
	for (const s of skipped) process.stderr.write(`pvrun: skipped ${s.dir}: ${s.reason}\n`);
	process.stdout.write(formatStatus(vms, root));
	return 0;
}

/** "45s", "12m05s", "3h02m", "2d04h": how long, in its two largest units. */
export function formatUptime(seconds: number): string {
	const s = Math.max(0, Math.floor(seconds));
	const two = (n: number) => String(n).padStart(2, '0');
	if (s < 60) return `${s}s`;
	if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
	if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
	return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}

/** The table `pvrun status` prints: one line per VM. */
export function formatStatus(vms: readonly VmStatus[], root: string): string {
	if (vms.length === 0) return `no pvrun VMs running (looked in ${root})\n`;
	const rows = [
		['PVRUN', 'QEMU', 'NAME', 'STATE', 'UPTIME', 'LOG', 'HINTS', 'CS IN/PREEMPTED', 'vCPU→CPU'],
		...vms.map((vm) => [
			String(vm.pvrunPid),
			String(vm.qemuPid),
			vm.name ?? '-',
			vm.state,
			formatUptime(vm.uptimeSeconds),
			vm.log ?? '-',
			vm.hints
				? `${vm.hints.state}${vm.hints.reason && vm.hints.state !== 'active' ? ` (${vm.hints.reason})` : vm.hints.types ? ` (${vm.hints.types.join(', ')})` : ''}`
				: '-',
			vm.cs ? formatCs(vm.cs) : '-',
			vm.placement ? formatPlacement(vm.placement, vm.kernelCpus) : 'not known yet',
		]),
	];
	const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
	return rows.map((r) => `${r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ')}\n`).join('');
}

/**
 * "0→1 excl, 1→0-1": each vCPU's host CPUs as the kernel has them (`kernel`,
 * from /proc) or else as planned; "excl" when it has a CPU of its own,
 * "operator" when an operator pinned it (pvrun leaves it alone), "planned X"
 * when the kernel has other CPUs than pvrun set (for a moment, or not yet seen).
 */
export function formatPlacement(placement: readonly VcpuPlacement[], kernel: Readonly<Record<string, number[]>> = {}): string {
	if (placement.length === 0) return '-';
	return [...placement]
		.sort((a, b) => a.vcpu - b.vcpu)
		.map((p) => {
			const now = formatCpuList(kernel[String(p.vcpu)] ?? p.cpus) || 'none';
			const planned = formatCpuList(p.cpus) || 'none';
			const mark = p.operator ? ' operator' : p.exclusive ? ' excl' : '';
			return `${p.vcpu}→${now}${mark}${now !== planned && !p.operator ? ` (planned ${planned})` : ''}`;
		})
		.join(', ');
}

/**
 * "0:1.2s/0.3s 1:0s/0s": per vCPU, time inside critical sections / of it, time its host thread
 * waited for a CPU; acting, then "[12x 8.0ms, left 9.8ms, owed 2.0ms]": boosts and their time,
 * boost time left in the budget, payback owed.
 */
export function formatCs(cs: CsStatus): string {
	const sec = (ms: number): string => (ms === 0 ? '0s' : `${(ms / 1000).toFixed(1)}s`);
	const ms = (us: number): string => `${(us / 1000).toFixed(1)}ms`;
	const act = (a: NonNullable<CsStatus['vcpus'][number]['act']>) => ` [${a.boosts}x ${ms(a.boostedUs)}, left ${ms(a.budgetUs)}, owed ${ms(a.debtUs)}]`;
	return cs.vcpus.length ? cs.vcpus.map((v) => `${v.vcpu}:${sec(v.csMs)}/${sec(v.csPreemptedMs)}${v.act ? act(v.act) : ''}`).join(' ') : '-';
}
