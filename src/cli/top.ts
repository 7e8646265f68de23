// `pvrun top [VM] [--all] [-d SECONDS] [-n COUNT]`: a live view of pvrun's VMs, as top(1)
// is of processes. For each VM: where each vCPU's thread may run (its own CPU or floating)
// and where it last ran, how much CPU it used and how long it waited for one, what hints
// the engine has followed, and its newest decisions. The VMs and their decisions come from
// the state files (src/vm/state.ts), the threads' use from /proc, sampled every SECONDS.
// On a terminal it redraws in place until q; piped, it prints COUNT frames (default one)
// and ends. Everything it prints from a state file was checked there (one-line strings).
import {formatCpuList} from '../host/cpus.js';
import {busyShare, machineCpuTicks, procStatFields, threadSchedstat} from '../host/proc.js';
import {UsageError} from '../util/errors.js';
import {allRuntimeRoots, runtimeRoot} from '../vm/runtime-dir.js';
import {isVmNamed, type RecentDecision, type VcpuPlacement, type VmStatus} from '../vm/state.js';
import {alignColumns, formatHints, formatLeases, formatUptime, readRoots} from './status.js';

export interface TopOptions {
	/** Only the VM with this id, name, or QEMU or pvrun pid. */
	vm?: string;
	/** Every user's VMs, not only the caller's. */
	all: boolean;
	/** Seconds between frames. */
	delayS: number;
	/** Frames to print before ending (default: until q on a terminal, one when piped). */
	iterations?: number;
}

/** The --delay and --iterations given, checked: a UsageError naming the option otherwise. */
export function topOptions(args: {vm?: string | undefined; all: boolean; delay: number; iterations?: number | undefined}): TopOptions {
	if (!(args.delay >= 0.1 && args.delay <= 3600)) throw new UsageError(`--delay takes seconds from 0.1 to 3600, not ${args.delay}`);
	if (args.iterations !== undefined && !(Number.isInteger(args.iterations) && args.iterations >= 1))
		throw new UsageError(`--iterations takes a whole number of frames, at least 1, not ${args.iterations}`);
	return {
		...(args.vm !== undefined ? {vm: args.vm} : {}),
		all: args.all,
		delayS: args.delay,
		...(args.iterations !== undefined ? {iterations: args.iterations} : {}),
	};
}

/** One look at the machine and at each vCPU thread: CPU time run and waited, ns, and the CPU it last ran on. */
export interface Sample {
	/** performance.now() when taken, ms. */
	at: number;
	machine: {total: number; idle: number};
	/** By `${qemuPid}/${tid}`. */
	threads: Map<string, {runNs: number; waitNs: number; lastCpu: number | undefined}>;
}

export function takeSample(vms: readonly VmStatus[]): Sample {
	const threads: Sample['threads'] = new Map();
	for (const vm of vms)
		for (const p of vm.placement ?? []) {
			if (p.tid === undefined || !vm.qemuRunning) continue;
			const s = threadSchedstat(vm.qemuPid, p.tid);
			if (!s) continue;
			const cpu = Number(procStatFields(vm.qemuPid, p.tid)?.[39]);
			threads.set(`${vm.qemuPid}/${p.tid}`, {...s, lastCpu: Number.isInteger(cpu) ? cpu : undefined});
		}
	return {at: performance.now(), machine: machineCpuTicks(), threads};
}

/** The VMs `options` asks for, with what was skipped and where it looked. */
export function topVms(options: Pick<TopOptions, 'vm' | 'all'>): {vms: VmStatus[]; skipped: number; roots: string[]} {
	const roots = options.all ? allRuntimeRoots() : [runtimeRoot().dir];
	const {vms, skipped} = readRoots(roots);
	const wanted = options.vm;
	const chosen = wanted === undefined ? vms : vms.filter((vm) => isVmNamed(vm, wanted));
	return {vms: chosen, skipped: skipped.length, roots};
}

const pct = (part: number, whole: number): string => (whole > 0 ? ((100 * part) / whole).toFixed(1) : '-');
const clock = (ms: number): string => new Date(ms).toTimeString().slice(0, 8);

/** A decision as one line: when, what, and the guest thread it followed. */
export function formatDecision(d: RecentDecision): string {
	const thread = d.tid ? ` (guest thread ${d.tid}${d.comm ? ` ${d.comm}` : ''})` : '';
	const cpus = (list: readonly number[]): string => `CPU${list.length === 1 ? '' : 's'} ${formatCpuList(list)}`;
	if (d.kind === 'pin') return `${clock(d.at)}  pin    vCPU ${d.vcpus.join(',')} → ${cpus(d.cpus)} ${d.shared ? 'shared' : 'exclusive'}${thread}`;
	if (d.kind === 'float') return `${clock(d.at)}  float  vCPU ${d.vcpus.join(',')} → ${cpus(d.cpus)}${d.tid ? `, its thread let go${thread}` : ''}`;
	return `${clock(d.at)}  deny   vCPU${d.vcpus.length === 1 ? '' : 's'} ${d.vcpus.join(',')}: no free CPU among ${formatCpuList(d.cpus)}`;
}

export interface FrameInput {
	vms: readonly VmStatus[];
	before: Sample | undefined;
	after: Sample;
	/** The terminal's size (a pipe: 80 by as many rows as it takes). */
	columns: number;
	rows: number;
	/** Where it looked, for an empty frame. */
	roots: readonly string[];
	/** Directories skipped (pvrun status says why). */
	skipped: number;
	/** The VM asked for, if one. */
	vm?: string;
	/** Wall clock now, ms since the epoch. */
	now: number;
	/** Whether the frame says that q quits. */
	live: boolean;
}

/** The lines of one frame, each at most `columns` wide, at most `rows` of them. */
export function topFrame(f: FrameInput): string[] {
	const dt = f.before ? (f.after.at - f.before.at) * 1e6 : 0; // ns
	const busy = f.before ? `, ${Math.round(100 * busyShare(f.before.machine, f.after.machine))}% busy` : '';
	const lines: string[] = [
		`pvrun top  ${clock(f.now)}  host${busy}  ${f.vms.length} VM${f.vms.length === 1 ? '' : 's'}${f.skipped ? `, ${f.skipped} skipped (pvrun status)` : ''}${f.live ? '  q: quit' : ''}`,
	];
	if (f.vms.length === 0)
		lines.push(
			f.vm !== undefined
				? `no pvrun VM is ${JSON.stringify(f.vm)} (looked in ${f.roots.join(', ')})`
				: `no pvrun VMs running (looked in ${f.roots.join(', ')})`,
		);
	for (const vm of f.vms) {
		const hints = `hints ${vm.hints ? formatHints(vm.hints) : '-'}`;
		lines.push(
			'',
			`${vm.id}${vm.name ? ` "${vm.name}"` : ''}  ${vm.state} ${formatUptime(vm.uptimeSeconds)}  ${hints}  QEMU ${vm.qemuPid}  pvrun ${vm.pvrunPid}`,
		);
		const placement = [...(vm.placement ?? [])].sort((a, b) => a.vcpu - b.vcpu);
		if (placement.length === 0) lines.push('  no placement yet');
		else {
			const rows = [['vCPU', 'THREAD', 'MAY RUN ON', 'PLACED', 'LAST CPU', 'CPU%', 'WAIT%']];
			for (const p of placement) {
				const key = `${vm.qemuPid}/${p.tid ?? 0}`;
				const a = f.after.threads.get(key);
				const b = f.before?.threads.get(key);
				// readVmStates read the kernel's CPUs of every running vCPU thread: where it could not, the thread is gone.
				const kernel = vm.kernelCpus?.[String(p.vcpu)] ?? p.cpus;
				rows.push([
					String(p.vcpu),
					p.tid !== undefined ? String(p.tid) : '-',
					formatCpuList(kernel) || 'none',
					placed(p, placement),
					a?.lastCpu !== undefined ? String(a.lastCpu) : '-',
					a && b ? pct(a.runNs - b.runNs, dt) : '-',
					a && b ? pct(a.waitNs - b.waitNs, dt) : '-',
				]);
			}
			lines.push(...alignColumns(rows, [true, true, false, false, true, true, true]).map((l) => `  ${l}`));
		}
		// Host-wide CPU leases (docs/leases.md), when the VM holds one or waits for one.
		if (vm.leases?.length || vm.leaseWaitingSince !== undefined) lines.push(`  leases: ${formatLeases(vm)}`);
		const act = vm.activity;
		if (act) {
			lines.push(
				`  hints read ${act.records}: ${act.pins} pin${act.pins === 1 ? '' : 's'}, ${act.floats} release${act.floats === 1 ? '' : 's'}, ${act.denies} denied`,
			);
			for (const d of [...act.recent].reverse()) lines.push(`  ${formatDecision(d)}`);
		} else lines.push('  no decision yet');
	}
	const fitted = lines.map((l) => (l.length > f.columns ? `${l.slice(0, Math.max(0, f.columns - 1))}…` : l));
	if (fitted.length <= f.rows) return fitted;
	const cut = fitted.slice(0, Math.max(0, f.rows - 1));
	const more = `… ${fitted.length - cut.length} more lines (a taller terminal, or pvrun top VM)`;
	return f.rows >= 1 ? [...cut, more.slice(0, f.columns)] : [];
}

/** operator (pinned outside pvrun), excl (a CPU of its own), shared (its own, which floating vCPUs may use too) or floating. */
function placed(p: VcpuPlacement, all: readonly VcpuPlacement[]): string {
	if (p.operator) return 'operator';
	if (!p.exclusive) return 'floating';
	const cpu = p.cpus[0] ?? -1;
	return all.some((o) => o !== p && !o.exclusive && !o.operator && o.cpus.includes(cpu)) ? 'shared' : 'excl';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Run `pvrun top`; resolves to the exit status. */
export async function topCommand(options: TopOptions): Promise<number> {
	const out = process.stdout;
	const live = out.isTTY === true && options.iterations === undefined;
	if (!live) {
		const frames = options.iterations ?? 1;
		let {vms} = topVms(options);
		let before = takeSample(vms);
		for (let i = 0; i < frames; i++) {
			await sleep(options.delayS * 1000);
			const found = topVms(options);
			vms = found.vms;
			const after = takeSample(vms);
			const lines = topFrame({
				...found,
				before,
				after,
				columns: out.isTTY ? out.columns : 200,
				rows: out.isTTY ? out.rows : Infinity,
				now: Date.now(),
				live: false,
				...vmOf(options),
			});
			out.write(`${i > 0 ? '\n' : ''}${lines.join('\n')}\n`);
			before = after;
		}
		// A script asked about one VM that is not there.
		return options.vm !== undefined && vms.length === 0 ? 1 : 0;
	}
	return liveTop(options);
}

const vmOf = (o: TopOptions): {vm?: string} => (o.vm !== undefined ? {vm: o.vm} : {});

/** The live view: the terminal's alternate screen, redrawn every delay and at each resize, until q, Ctrl-C or a signal. */
function liveTop(options: TopOptions): Promise<number> {
	const out = process.stdout;
	const input = process.stdin;
	return new Promise((resolve) => {
		let before: Sample | undefined;
		let last: {found: ReturnType<typeof topVms>; after: Sample} | undefined;
		const draw = (): void => {
			if (!last) return;
			const lines = topFrame({
				...last.found,
				before,
				after: last.after,
				columns: out.columns || 80,
				rows: out.rows || 24,
				now: Date.now(),
				live: true,
				...vmOf(options),
			});
			// Home, each line then clear to its end, then clear below: no flicker, nothing left of a longer frame.
			out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
		};
		const tick = (): void => {
			const found = topVms(options);
			const after = takeSample(found.vms);
			last = {found, after};
			draw();
			before = after;
		};
		const end = (code: number): void => {
			clearInterval(timer);
			out.off('resize', draw);
			input.off('data', onKey);
			for (const s of signals) process.off(s, onSignal);
			if (input.isTTY) input.setRawMode(false);
			input.pause();
			out.write('\x1b[?25h\x1b[?1049l');
			resolve(code);
		};
		const onKey = (data: Buffer): void => {
			const key = data.toString('utf8');
			if (key === 'q' || key === 'Q' || key === '\x03') end(0);
			else if (key === ' ') tick();
		};
		const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
		const onSignal = (): void => end(0);
		for (const s of signals) process.on(s, onSignal);
		out.write('\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J');
		if (input.isTTY) input.setRawMode(true);
		input.on('data', onKey);
		input.resume();
		out.on('resize', draw);
		tick();
		const timer = setInterval(tick, options.delayS * 1000);
	});
}
