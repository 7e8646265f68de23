// How fast the host runs plain CPU-bound code right now: a fixed integer loop
// (xorshift) timed for a fraction of a second, in millions of rounds a second.
// Measured before every boot of a matrix file's run, so that the gate can
// compare a cell's values per unit of host speed: a runner that is slower
// today (another job, a lower clock, a hypervisor's steal) then cancels out,
// the same-run ratio applied to absolute figures. docs/ci.md#the-gate.

/** Millions of loop rounds per second over `ms` milliseconds: the median of short slices, so that one preemption costs little. */
export function measureHostSpeed(ms = 300, slices = 6): number {
	let x = 2463534242;
	const rates: number[] = [];
	const sliceMs = ms / slices;
	for (let s = 0; s < slices; s++) {
		const start = performance.now();
		let rounds = 0;
		let now = start;
		while (now - start < sliceMs) {
			for (let i = 0; i < 10_000; i++) {
				x ^= x << 13;
				x ^= x >>> 17;
				x ^= x << 5;
			}
			rounds += 10_000;
			now = performance.now();
		}
		rates.push(rounds / (now - start) / 1000);
	}
	rates.sort((a, b) => a - b);
	const median = rates[rates.length >> 1] ?? 0;
	// x is used, so the loop is not optimised away.
	return x === 0 ? median : Math.round(median * 10) / 10;
}
