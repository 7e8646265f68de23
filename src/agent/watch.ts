// Whether a VM's hints are active, and why not: what the guest agent said in
// its HELLO, and how long the guest has run without an agent answering. Time
// counts only while the guest runs (not while QEMU waits under -S, or a VM is
// paused), so a libvirt domain that is defined and started later, or a
// suspended one, is not reported as agentless. Pure: the clock is given.

export type HintsState = 'waiting' | 'active' | 'inactive';

export interface HintsStatus {
	state: HintsState;
	/** Why not active, in a few words. */
	reason?: string;
	/** The hint types whose programs the guest agent has attached (the area's agent_features), when it said. */
	types?: string[];
	/** Active: since when, ms since the epoch (the state file's, for pvrun status; not in the event log's lines). */
	since?: number;
}

export class AgentWatch {
	private ranMs = 0;
	private runningSince: number | undefined;
	private reported = false;
	private current: HintsStatus = {state: 'waiting', reason: 'no guest agent has answered yet'};

	constructor(
		/** Guest run time after which a missing agent is reported. */
		private readonly waitMs: number,
		private readonly now: () => number = () => performance.now(),
	) {}

	get status(): HintsStatus {
		return this.current;
	}

	/** The guest runs (QMP RESUME, or status running) or stopped (STOP). */
	guestRunning(running: boolean): void {
		const now = this.now();
		if (running && this.runningSince === undefined) this.runningSince = now;
		if (!running && this.runningSince !== undefined) {
			this.ranMs += now - this.runningSince;
			this.runningSince = undefined;
		}
	}

	/** Guest run time since the agent last went away (or since the start). */
	private ran(): number {
		return this.ranMs + (this.runningSince === undefined ? 0 : this.now() - this.runningSince);
	}

	/**
	 * The agent answered HELLO: `problem` says why hints cannot work with it
	 * (no shared memory, another protocol version). Returns the line to print,
	 * if any: a problem, or the hints becoming active after a reported absence.
	 */
	hello(problem?: string): string | undefined {
		if (problem !== undefined) {
			this.current = {state: 'inactive', reason: problem};
			return `hints inactive: ${problem}; the VM runs as plain QEMU would`;
		}
		const late = this.reported;
		const after = Math.round(this.ran() / 1000);
		this.current = {state: 'active'};
		this.reported = false;
		return late ? `hints active: the guest agent answered after ${after} s of guest time` : undefined;
	}

	/**
	 * The agent is there but has not answered yet (a busy guest or host): wait for it, `reason`
	 * saying so, while the guest's run time without an agent goes on counting (check()).
	 */
	slow(reason: string): void {
		if (this.current.state !== 'inactive') this.current = {state: 'waiting', reason};
	}

	/** The agent went away (its port closed, the guest reset): wait for it again, from now. */
	gone(reason: string): void {
		this.current = {state: 'waiting', reason};
		this.ranMs = 0;
		if (this.runningSince !== undefined) this.runningSince = this.now();
		this.reported = false;
	}

	/** Call now and then: the line to print once the guest has run `waitMs` without an agent. */
	check(): string | undefined {
		if (this.current.state !== 'waiting' || this.reported || this.ran() < this.waitMs) return undefined;
		this.reported = true;
		const seconds = Math.round(this.waitMs / 1000);
		this.current = {state: 'inactive', reason: `no guest agent answered within ${seconds} s of guest time`};
		return `hints inactive: no pvrun guest agent answered within ${seconds} s of guest time (is it installed and running in the guest? --pv-agent-wait sets the wait); the VM runs as plain QEMU would`;
	}
}
