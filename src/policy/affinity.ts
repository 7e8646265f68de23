// Where policy decides: the affinity policy. Each vCPU that runs a guest
// thread pinned to it alone gets an exclusive host CPU from the allowed set;
// every other vCPU floats on the CPUs left over. Pure and deterministic: the
// same hints and the same previous assignment always give the same result.

/** A guest thread's current affinity hint. */
export interface Hint {
	tid: number;
	tgid: number;
	comm: string;
	/** vCPUs in the thread's mask (valid for this VM), ascending. */
	vcpus: number[];
	/** Ring sequence of the record that set it: older hints win ties. */
	seq: number;
}

export interface Exclusive {
	pcpu: number;
	/** The thread whose hint earned it. */
	tid: number;
	seq: number;
}

export interface Assignment {
	/** vCPU index → its exclusive host CPU. */
	exclusive: Map<number, Exclusive>;
	/** Host CPUs the other vCPUs float on. */
	floating: number[];
	/** vCPUs that asked but got no CPU of their own (not enough CPUs), ascending. */
	denied: number[];
}

/** The initial assignment: every vCPU floats on every allowed CPU. */
export function floatingOnly(allowed: readonly number[]): Assignment {
	return {exclusive: new Map(), floating: [...allowed], denied: []};
}

/**
 * Decide which vCPUs get a host CPU of their own. vCPUs that ask are served in
 * index order; one allowed CPU is kept for the vCPUs that float, unless none
 * do. A vCPU keeps the CPU it had when it can; new grants take the highest
 * free CPUs (CPU 0 usually carries the host's own housekeeping).
 */
export function decideAffinity(hints: Iterable<Hint>, nrVcpus: number, allowed: readonly number[], previous: Assignment): Assignment {
	// The thread that asks for each vCPU alone: the oldest hint wins.
	const askers = new Map<number, Hint>();
	for (const h of hints) {
		const v = h.vcpus.length === 1 ? h.vcpus[0] : undefined;
		if (v === undefined || v < 0 || v >= nrVcpus) continue;
		const current = askers.get(v);
		if (!current || h.seq < current.seq) askers.set(v, h);
	}
	const asking = [...askers.keys()].sort((a, b) => a - b);
	const cpus = [...new Set(allowed)].sort((a, b) => a - b);
	const everyVcpuAsks = asking.length >= nrVcpus;
	const capacity = Math.max(0, everyVcpuAsks ? Math.min(cpus.length, nrVcpus) : cpus.length - 1);
	const granted = asking.slice(0, capacity);
	const denied = asking.slice(capacity);

	const exclusive = new Map<number, Exclusive>();
	const used = new Set<number>();
	// First keep stable placements, then hand out the highest free CPUs.
	for (const v of granted) {
		const before = previous.exclusive.get(v)?.pcpu;
		if (before !== undefined && cpus.includes(before) && !used.has(before)) {
			used.add(before);
			const h = askers.get(v);
			if (h) exclusive.set(v, {pcpu: before, tid: h.tid, seq: h.seq});
		}
	}
	const free = cpus.filter((c) => !used.has(c)).reverse();
	for (const v of granted) {
		if (exclusive.has(v)) continue;
		const pcpu = free.shift();
		const h = askers.get(v);
		if (pcpu === undefined || !h) continue;
		used.add(pcpu);
		exclusive.set(v, {pcpu, tid: h.tid, seq: h.seq});
	}
	const floating = cpus.filter((c) => !used.has(c));
	return {exclusive: new Map([...exclusive].sort(([a], [b]) => a - b)), floating: floating.length ? floating : cpus, denied};
}

/** The host CPUs vCPU `v` may run on under `a`. */
export function cpusFor(a: Assignment, v: number): number[] {
	const e = a.exclusive.get(v);
	return e ? [e.pcpu] : a.floating;
}
