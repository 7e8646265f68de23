// A pvrun run as the user asked for it: the typed configuration the command
// line (src/cli/pv-options.ts) turns pvrun's --pv- options into. Nothing here
// is probed or planned; see src/vm/probe.ts and src/vm/plan.ts.

import type {HintScript} from './hint-scripts.js';

export interface VmConfig {
	/** --pv-cpus: the host CPUs for the vCPUs (default: all pvrun may use). */
	cpus?: number[];
	/** --pv-log: the event log. */
	log?: string;
	/** --pv-hint-script: bpftrace hint scripts for the guest agent to run (src/vm/hint-scripts.ts). */
	hintScripts?: HintScript[];
	/** --pv-metrics: the Prometheus text file (src/vm/metrics.ts). */
	metrics?: string;
	/** --pv-accel: the accelerator when QEMU's arguments choose none. */
	accel: 'auto' | 'kvm' | 'tcg';
	/** --pv-off: QEMU exactly as given. */
	off: boolean;
	/** The native fast path (docs/fast-path.md), when built: on unless --pv-fast-path off. */
	fastPath: boolean;
	/** --pv-dry-run: print the QEMU command line and exit. */
	dryRun: boolean;
	/** --pv-qemu: the QEMU binary. */
	qemu: string;
	/** Seconds of guest time after which a missing guest agent is reported (--pv-agent-wait). */
	agentWaitS: number;
	/** --pv-cs: critical sections off, observed, or acted on (docs/critical-sections.md). */
	cs: CsMode;
	/** --pv-cs-boost: how `act` boosts a preempted vCPU inside a section, and its budget. */
	csBoost: CsBoost;
	/** --pv-cs-feedback: where the host's view of the vCPU threads comes from (docs/critical-sections.md#the-host-side). */
	csFeedback: CsFeedback;
	/** --pv-placement: the floating vCPU threads moved as one (cpuset), one by one (threads), or cpuset where it can (auto). */
	placement: Placement;
	/** --pv-share: this VM's weight against other VMs waiting for a CPU of their own (docs/leases.md), 1 to 1000. */
	share: number;
	/** --pv-guest-cpu: the share of one host CPU, percent, that what the guest does may make pvrun use (0: off, no budget). */
	guestCpuPercent: number;
}

export type CsMode = 'off' | 'observe' | 'act';

export type Placement = 'auto' | 'priority' | 'cpuset' | 'threads';

/** --pv-cs-boost (docs/critical-sections.md#acting): each boost's bound, the budget per vCPU, the payback. */
export interface CsBoost {
	/** Longest boost, µs. */
	maxUs: number;
	/** Boost time per vCPU, % of the window. */
	sharePct: number;
	windowMs: number;
	/** Payback owed, % of boost time. */
	paybackPct: number;
}

export const defaultCsBoost: CsBoost = {maxUs: 1000, sharePct: 10, windowMs: 100, paybackPct: 100};
/** `auto`: a host BPF program where the host allows it, else /proc; `bpf`: the same, with a warning when it cannot; `proc`: /proc only. */
export type CsFeedback = 'auto' | 'bpf' | 'proc';

/** --pv-agent-wait's default: a distribution's guest boots within a minute under TCG on 2 CPUs. */
export const defaultAgentWaitS = 60;
