// Who placed a thread: pvrun, or an operator behind its back. An operator
// who narrows a vCPU thread's CPUs (virsh vcpupin --live, which narrows the
// vCPU's cgroup cpuset and sets its affinity; taskset from the host; a
// cpuset written by hand) wins: pvrun stops placing that vCPU until the
// kernel lets it run on every CPU pvrun may use again (virsh vcpupin back to
// the full set), then takes it back. Pure: the affinities are given.

/** What a thread's affinity, as the kernel has it now, says about who placed it. */
export type Placer =
	/** What pvrun set (or nothing set yet). */
	| 'pvrun'
	/** Someone widened it to every CPU pvrun may use (or more): pvrun places it again. */
	| 'widened'
	/** Someone narrowed it to a set pvrun did not set: the operator's. */
	| 'operator';

/** Whether `cpus` holds every CPU of `allowed`. */
export function covers(cpus: readonly number[], allowed: readonly number[]): boolean {
	return allowed.every((c) => cpus.includes(c));
}

/** Whether two CPU lists name the same set. */
export function sameCpus(a: readonly number[], b: readonly number[]): boolean {
	return a.length === b.length && covers(a, b);
}

/**
 * Who placed a thread whose affinity the kernel has as `kernel`, when pvrun
 * last set `applied` (undefined: nothing yet) and may use `allowed`.
 */
export function placer(kernel: readonly number[], applied: readonly number[] | undefined, allowed: readonly number[]): Placer {
	if (applied === undefined || sameCpus(kernel, applied)) return 'pvrun';
	return covers(kernel, allowed) ? 'widened' : 'operator';
}
