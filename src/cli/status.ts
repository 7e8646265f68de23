// `pvrun status [--all] [--json]`: the pvrun VMs running on this machine, from the
// state files their pvrun processes keep (src/vm/state.ts) in the caller's runtime
// root (src/vm/runtime-dir.ts), or in every user's with --all. Directories left by a
// pvrun that is gone, or not readable, are reported on stderr.
import fs from 'node:fs';
import type {HintsStatus} from '../agent/watch.js';
import {formatCpuList} from '../host/cpus.js';
import {leaseDir, readLeases} from '../host/leases.js';
import {allRuntimeRoots, runtimeRoot} from '../vm/runtime-dir.js';
import {byStart, readVmStates, type CsStatus, type SkippedRunDir, type VcpuPlacement, type VmStatus} from '../vm/state.js';

/** Print the VMs (a table, or JSON with --json) and what was skipped; resolves to the exit code. */
export function statusCommand(options: {json: boolean; all?: boolean; roots?: string[]}): number {
	const roots = options.roots ?? (options.all ? allRuntimeRoots() : [runtimeRoot().dir]);
	const {vms, skipped} = readRoots(roots);
	if (options.json) {
		process.stdout.write(`${JSON.stringify({vms, skipped}, null, 2)}\n`);
		return 0;
	}
	for (const s of skipped) process.stderr.write(`pvrun: skipped ${s.dir}: ${s.reason}\n`);
	process.stdout.write(formatStatus(vms, roots, options.all ? userNames() : undefined));
	return 0;
}

/** The VMs of every root in `roots`, oldest first, with their leases, and what was skipped. */
export function readRoots(roots: readonly string[]): {vms: VmStatus[]; skipped: SkippedRunDir[]} {
	const found = roots.map((root) => readVmStates(root));
	const vms = found.flatMap((f) => f.vms).sort(byStart);
	for (const dir of new Set(roots.map((root) => leaseDir(root)))) {
		const {leases, owners} = readLeases(dir);
		for (const vm of vms) {
			const mine = leases.filter((l) => l.pid === vm.pvrunPid && l.qemuPid === vm.qemuPid).map(({cpu, vcpu, since}) => ({cpu, vcpu, since}));
			if (mine.length) vm.leases = [...(vm.leases ?? []), ...mine];
			const waiting = owners.find((o) => o.pid === vm.pvrunPid && o.qemuPid === vm.qemuPid)?.waitingSince;
			if (waiting !== undefined) vm.leaseWaitingSince = waiting;
		}
	}
	return {vms, skipped: found.flatMap((f) => f.skipped)};
}

/** uid → user name, from /etc/passwd (the numbers alone where it cannot be read). */
export function userNames(passwd = '/etc/passwd'): Map<number, string> {
	const names = new Map<number, string>();
	let text: string;
	try {
		text = fs.readFileSync(passwd, 'utf8');
	} catch {
		return names;
	}
	for (const line of text.split('\n')) {
		const [name, , uid] = line.split(':');
		if (name && uid !== undefined && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), name);
	}
	return names;
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

/** The table `pvrun status` prints: one line per VM; with `users` (--all), whose each is first. */
export function formatStatus(vms: readonly VmStatus[], roots: readonly string[], users?: ReadonlyMap<number, string>): string {
	if (vms.length === 0) return `no pvrun VMs running (looked in ${roots.join(', ')})\n`;
	const rows = [
		[...(users ? ['USER'] : []), 'PVRUN', 'QEMU', 'NAME', 'STATE', 'UPTIME', 'LOG', 'HINTS', 'RECORDS/PINS', 'CS IN/PREEMPTED', 'LEASES', 'vCPU→CPU'],
		...vms.map((vm) => [
			...(users ? [users.get(vm.uid) ?? String(vm.uid)] : []),
			String(vm.pvrunPid),
			String(vm.qemuPid),
			vm.name ?? '-',
			vm.state,
			formatUptime(vm.uptimeSeconds),
			vm.log ?? '-',
			vm.hints ? formatHints(vm.hints) : '-',
			vm.activity ? `${vm.activity.records}/${vm.activity.pins}` : '-',
			vm.cs ? formatCs(vm.cs) : '-',
			formatLeases(vm),
			vm.placement ? formatPlacement(vm.placement, vm.kernelCpus) : 'not known yet',
		]),
	];
	return alignColumns(rows)
		.map((l) => `${l}\n`)
		.join('');
}

/** Rows as lines: each column padded to its widest cell (`right`: right-aligned), two spaces apart, no trailing space. */
export function alignColumns(rows: readonly string[][], right: readonly boolean[] = []): string[] {
	const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
	return rows.map((r) =>
		r
			.map((cell, c) => (right[c] ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
			.join('  ')
			.trimEnd(),
	);
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

/** "1 (vCPU 0)", "1 (vCPU 0), 3 (vCPU 2) waiting", "waiting", "-": the LEASES column. */
export function formatLeases(vm: Pick<VmStatus, 'leases' | 'leaseWaitingSince'>): string {
	const held = (vm.leases ?? []).map((l) => `${l.cpu} (vCPU ${l.vcpu})`).join(', ');
	const waiting = vm.leaseWaitingSince !== undefined ? 'waiting' : '';
	return [held, waiting].filter(Boolean).join(' ') || '-';
}

/** "active since 04:40:12 (affinity)", "waiting (why)", "inactive (why)": the HINTS column. */
export function formatHints(h: HintsStatus): string {
	if (h.state !== 'active') return `${h.state}${h.reason ? ` (${h.reason})` : ''}`;
	const since = h.since === undefined ? '' : ` since ${new Date(h.since).toTimeString().slice(0, 8)}`;
	return `active${since}${h.types ? ` (${h.types.join(', ')})` : ''}`;
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
