// Seeded randomness for the fuzz tests: reproducible runs, and a seed that
// PVRUN_TEST_SEED can override to replay a failure.

/** xorshift32: tiny, seeded, reproducible; returns unsigned 32-bit values. */
export function xorshift32(seed: number): () => number {
	let x = seed >>> 0 || 1;
	return () => {
		x ^= x << 13;
		x >>>= 0;
		x ^= x >>> 17;
		x ^= x << 5;
		x >>>= 0;
		return x;
	};
}

/** PVRUN_TEST_SEED if it is a positive integer, else `fallback`. */
export function fuzzSeed(fallback: number): number {
	const fromEnv = Number(process.env['PVRUN_TEST_SEED']);
	return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv >>> 0 : fallback;
}
