// --pv-metrics FILE: the VM's numbers in Prometheus' text exposition format (0.0.4), for
// node_exporter's textfile collector (docs/cli.md#--pv-metrics). The file is replaced whole
// (a temporary file beside it, renamed), so the collector never reads half of it; it is
// written every few seconds and removed when the VM ends.
import fs from 'node:fs';
import path from 'node:path';
import type {HintActivity, VcpuPlacement} from './state.js';

export interface VmMetrics {
	/** The run directory's name: the `vm` label. */
	id: string;
	name?: string | undefined;
	qemuPid: number;
	vcpus: number;
	placement?: readonly VcpuPlacement[] | undefined;
	activity?: HintActivity | undefined;
	/** The host CPUs leased, by vCPU. */
	leases: ReadonlyArray<{cpu: number; vcpu: number}>;
	waiting: boolean;
	decisions: {fast: number; slow: number};
	hintsActive: boolean;
}

/** A label value as the format wants it: backslash, double quote and line feed escaped. */
const label = (v: string | number): string => String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** The metrics as Prometheus text: a HELP and TYPE line per family, one sample per line. */
export function formatMetrics(m: VmMetrics): string {
	const vm = `vm="${label(m.id)}"`;
	const out: string[] = [];
	const family = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number]>) => {
		out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
		for (const [labels, value] of samples) out.push(`${name}{${vm}${labels ? `,${labels}` : ''}} ${value}`);
	};
	family('pvrun_vm_info', 'gauge', 'A pvrun VM: its guest name and QEMU pid.', [[`name="${label(m.name ?? '')}",qemu_pid="${m.qemuPid}"`, 1]]);
	family('pvrun_vcpus', 'gauge', 'vCPUs of the VM.', [['', m.vcpus]]);
	family('pvrun_hints_active', 'gauge', '1 while the guest agent has the hint programs attached.', [['', m.hintsActive ? 1 : 0]]);
	const a = m.activity;
	family('pvrun_hint_records_total', 'counter', 'Hint records read from the guest.', [['', a?.records ?? 0]]);
	family('pvrun_hint_decisions_total', 'counter', 'Placement changes by kind: a vCPU got a CPU of its own (pin), lost it (float), or got none (deny).', [
		['kind="pin"', a?.pins ?? 0],
		['kind="float"', a?.floats ?? 0],
		['kind="deny"', a?.denies ?? 0],
	]);
	family('pvrun_host_decisions_total', 'counter', 'Decisions on hint records, by who applied them: the native fast path or the JavaScript thread.', [
		['path="fast"', m.decisions.fast],
		['path="slow"', m.decisions.slow],
	]);
	const placement = [...(m.placement ?? [])].sort((x, y) => x.vcpu - y.vcpu);
	family(
		'pvrun_vcpu_exclusive',
		'gauge',
		'1 if the vCPU has a host CPU of its own.',
		placement.map((p) => [`vcpu="${p.vcpu}"`, p.exclusive ? 1 : 0]),
	);
	family(
		'pvrun_vcpu_cpus',
		'gauge',
		'Host CPUs the vCPU thread may run on, as pvrun placed it.',
		placement.map((p) => [`vcpu="${p.vcpu}"`, p.cpus.length]),
	);
	family(
		'pvrun_lease',
		'gauge',
		'1 for each host CPU the VM leases (docs/leases.md), with the vCPU it is for.',
		[...m.leases].sort((x, y) => x.cpu - y.cpu).map((l) => [`cpu="${l.cpu}",vcpu="${l.vcpu}"`, 1]),
	);
	family('pvrun_lease_waiting', 'gauge', '1 while the VM waits for a host CPU that other VMs lease.', [['', m.waiting ? 1 : 0]]);
	return `${out.join('\n')}\n`;
}

/** The metrics file of one VM. */
export class MetricsFile {
	private failed = false;
	constructor(
		readonly file: string,
		private readonly warn: (message: string) => void,
	) {}

	/** Replace the file with `m`; a failure is said once and the VM runs on. */
	write(m: VmMetrics): void {
		const tmp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${process.pid}.tmp`);
		try {
			fs.writeFileSync(tmp, formatMetrics(m), {mode: 0o644});
			fs.renameSync(tmp, this.file);
			this.failed = false;
		} catch (error) {
			fs.rmSync(tmp, {force: true});
			if (!this.failed) this.warn(`cannot write --pv-metrics ${this.file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
			this.failed = true;
		}
	}

	/** The VM ended: remove the file (a collector would go on reporting it). */
	remove(): void {
		fs.rmSync(this.file, {force: true});
	}
}
