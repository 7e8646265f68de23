// The two summaries of a list of measurements pvrun reports: percentiles of
// many samples (latencies: nearest rank), and the median and range of a few
// repetitions (the benchmark matrix), and how much repetitions vary.

export interface Percentiles {
	n: number;
	p50: number;
	p90: number;
	p99: number;
	max: number;
}

export interface Spread {
	n: number;
	median: number;
	min: number;
	max: number;
}

/** p50, p90, p99 (nearest rank: the smallest value with at least p of them at or below it) and the largest. */
export function percentiles(values: readonly number[]): Percentiles {
	const s = [...values].sort((a, b) => a - b);
	const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? 0;
	return {n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s.at(-1) ?? 0};
}

/** The median (the mean of the middle two for an even count), smallest and largest. */
export function spread(values: readonly number[]): Spread {
	const s = [...values].sort((a, b) => a - b);
	const mid = s.length >> 1;
	const median = s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
	return {n: s.length, median, min: s[0] ?? 0, max: s.at(-1) ?? 0};
}

/** Jain's fairness index of `xs`: (Σx)² / (n·Σx²), 1 when all are equal, 1/n when one has everything; undefined for none or all zero. */
export function jainIndex(xs: readonly number[]): number | undefined {
	const sum = xs.reduce((a, b) => a + b, 0);
	const squares = xs.reduce((a, b) => a + b * b, 0);
	return xs.length === 0 || squares === 0 ? undefined : (sum * sum) / (xs.length * squares);
}

/** The coefficient of variation: standard deviation (n − 1) over the mean; 0 for fewer than two values or a zero mean. */
export function cv(values: readonly number[]): number {
	if (values.length < 2) return 0;
	const mean = values.reduce((a, b) => a + b, 0) / values.length;
	if (mean === 0) return 0;
	const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
	return Math.round((Math.sqrt(variance) / Math.abs(mean)) * 10_000) / 10_000;
}
