// Where policy decides: the affinity policy. Each vCPU that runs a guest
// thread pinned to it alone gets a host CPU of its own from the allowed set;
// every other vCPU floats on the CPUs left over. When the askers would need
// every CPU (more askers than CPUs minus one), they still each get one, and the
// other vCPUs float on all CPUs at a lower weight (shared mode) rather than
// being packed onto a single CPU. A granted vCPU that hardly uses its CPU (the
// pinned thread mostly sleeps) shares it the same way, so its idle time is not
// lost to the VM. vCPUs an operator pinned outside pvrun (virsh vcpupin,
// taskset) are held: they get no grant, and the CPUs they were pinned to are
// granted to no other vCPU. Pure and deterministic: the same hints, idle set,
// held vCPUs and previous assignment always give the same result.

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
	/** The floating vCPUs may run on this CPU too, at the lower weight (shared mode, or the vCPU idles). */
	shared: boolean;
}

export interface Assignment {
	/** vCPU index → its exclusive host CPU. */
	exclusive: Map<number, Exclusive>;
	/** Host CPUs the other vCPUs float on. */
	floating: number[];
	/** vCPUs that asked but got no CPU of their own (not enough CPUs), ascending. */
	denied: number[];
	/**
	 * Some granted CPU is shared: the floating vCPUs run on it too (it is in
	 * `floating`); when every CPU is granted (crowded), at nice `floatNice`, so
	 * each busy granted vCPU keeps most of its CPU.
	 */
	shared: boolean;
	/** Nice value of the floating vCPU threads (0 unless crowded). */
	floatNice: number;
}

/**
 * The floating vCPUs' nice value in shared mode: weight 335 against 1024, so a
 * busy granted vCPU keeps ~75 % of its CPU when one busy floating vCPU shares
 * it, and the floating vCPUs still progress. (Two pinned vCPUs handing a token
 * back and forth both run at once ~56 % of the time instead of ~25 % with
 * 1:1 static pinning.)
 */
export const sharedFloatNice = 5;

/** vCPUs pvrun does not place, because an operator pinned them: they and the CPUs they are on. */
export interface Held {
	vcpus: ReadonlySet<number>;
	/** The held vCPUs' CPUs: granted to no other vCPU (they are not its own). */
	cpus: ReadonlySet<number>;
}

export const noneHeld: Held = {vcpus: new Set(), cpus: new Set()};

/** The initial assignment: every vCPU floats on every allowed CPU. */
export function floatingOnly(allowed: readonly number[]): Assignment {
	return {exclusive: new Map(), floating: [...allowed], denied: [], shared: false, floatNice: 0};
}

/**
 * Decide which vCPUs get a host CPU of their own. vCPUs that ask are served in
 * index order. One allowed CPU is kept for the vCPUs that float while that
 * leaves a CPU for every asker; when it does not (and there are two CPUs or
 * more), every CPU can be granted and the floating vCPUs share them all at a
 * lower weight (shared mode). Askers beyond the number of CPUs are denied. A
 * vCPU keeps the CPU it had when it can; new grants take the highest free CPUs
 * (CPU 0 usually carries the host's own housekeeping).
 */
export function decideAffinity(
	hints: Iterable<Hint>,
	nrVcpus: number,
	allowed: readonly number[],
	previous: Assignment,
	/** Granted vCPUs seen using little of their CPU: they share it while the same grant goes on (see VcpuUsage). */
	idle: ReadonlySet<number> = new Set(),
	/** vCPUs an operator pinned, and their CPUs (see Held). */
	held: Held = noneHeld,
	/**
	 * Allowed CPUs the vCPUs may float on but none may have as its own: a lease on them would leave
	 * another VM on the host nowhere to run (src/host/leases.ts). With one, the floating vCPUs
	 * have a CPU already: every grantable CPU can be granted, none shared.
	 */
	floatOnly: ReadonlySet<number> = new Set(),
	/** The order new grants take free CPUs in (src/host/topology.ts; lower first); without it, or on a tie, the highest CPU first. */
	prefer?: (cpu: number, granted: readonly number[]) => number,
	/**
	 * More vCPUs ask for a CPU of their own across the host's VMs than it has CPUs to spare
	 * (docs/leases.md#sharing): crowded whatever this VM asks, so every grant is shared and the
	 * floating vCPUs run at the lower weight.
	 */
	crowdedHost = false,
): Assignment {
	// The thread that asks for each vCPU alone: the oldest hint wins. A held vCPU's askers are not served.
	const askers = new Map<number, Hint>();
	for (const h of hints) {
		const v = h.vcpus.length === 1 ? h.vcpus[0] : undefined;
		if (v === undefined || v < 0 || v >= nrVcpus || held.vcpus.has(v)) continue;
		const current = askers.get(v);
		if (!current || h.seq < current.seq) askers.set(v, h);
	}
	const asking = [...askers.keys()].sort((a, b) => a - b);
	const cpus = [...new Set(allowed)].sort((a, b) => a - b);
	const grantable = cpus.filter((c) => !held.cpus.has(c) && !floatOnly.has(c));
	const floatsElsewhere = cpus.some((c) => floatOnly.has(c));
	const managed = nrVcpus - [...held.vcpus].filter((v) => v >= 0 && v < nrVcpus).length;
	// Every vCPU pvrun places asks and each can have a CPU: nothing floats. With fewer CPUs, the
	// vCPUs left over float on the granted CPUs, so those are shared (crowded) like any other.
	const everyVcpuAsks = asking.length >= managed && grantable.length >= managed;
	const crowded = crowdedHost || (!everyVcpuAsks && !floatsElsewhere && grantable.length >= 2 && asking.length > grantable.length - 1);
	const capacity = Math.max(0, everyVcpuAsks || crowded ? Math.min(grantable.length, managed) : grantable.length - (floatsElsewhere ? 0 : 1));
	// With every vCPU asking, nothing floats: there is nobody to share with. The idle
	// judgement belongs to a grant that goes on (same vCPU, thread and CPU): a new grant
	// starts with the CPU to itself, to be judged afresh (AffinityEngine.judgeUse).
	const sharing = (v: number, goesOn: boolean) => !everyVcpuAsks && (crowded || (goesOn && idle.has(v)));
	const granted = asking.slice(0, capacity);
	const denied = asking.slice(capacity);

	const exclusive = new Map<number, Exclusive>();
	const used = new Set<number>();
	// First keep stable placements, then hand out the highest free CPUs.
	for (const v of granted) {
		const before = previous.exclusive.get(v);
		if (before !== undefined && grantable.includes(before.pcpu) && !used.has(before.pcpu)) {
			used.add(before.pcpu);
			const h = askers.get(v);
			if (h) exclusive.set(v, {pcpu: before.pcpu, tid: h.tid, seq: h.seq, shared: sharing(v, h.tid === before.tid)});
		}
	}
	const free = grantable.filter((c) => !used.has(c)).reverse();
	for (const v of granted) {
		if (exclusive.has(v)) continue;
		if (prefer && free.length > 1) {
			const sofar = [...exclusive.values()].map((e) => e.pcpu);
			const rank = new Map(free.map((c) => [c, prefer(c, sofar)]));
			free.sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0) || b - a);
		}
		const pcpu = free.shift();
		const h = askers.get(v);
		if (pcpu === undefined || !h) continue;
		used.add(pcpu);
		exclusive.set(v, {pcpu, tid: h.tid, seq: h.seq, shared: sharing(v, false)});
	}
	const sharedCpus = new Set([...exclusive.values()].filter((e) => e.shared).map((e) => e.pcpu));
	const floating = cpus.filter((c) => !used.has(c) || sharedCpus.has(c));
	const shared = sharedCpus.size > 0;
	return {
		exclusive: new Map([...exclusive].sort(([a], [b]) => a - b)),
		floating: floating.length ? floating : cpus,
		denied,
		shared,
		// The lower weight protects busy grants from the floating vCPUs when every CPU is granted
		// (crowded). An idle grant needs no protection, and a lower weight would cost the floating
		// vCPUs their share against every other process on the host (beside host hogs: half the work).
		// On a crowded host the floating vCPUs share other VMs' granted CPUs too: the lower weight always.
		floatNice: crowded && (shared || crowdedHost) ? sharedFloatNice : 0,
	};
}

/** The host CPUs vCPU `v` may run on under `a`. */
export function cpusFor(a: Assignment, v: number): number[] {
	const e = a.exclusive.get(v);
	return e ? [e.pcpu] : a.floating;
}
