// `pvrun bench hint-latency`'s pure parts (src/bench/hint-latency.ts): the
// runs of a series pooled into percentiles (nearest rank, src/util/stats.ts),
// and the report with its targets met, missed or not measured. No guest runs
// here; the benchmark itself runs in `make bench`.
import t from 'tap';
import {hintLatencyReport, series, type HintLatencyResult, type RunSamples} from '../../src/bench/hint-latency.js';

const run1: RunSamples = {
	pinUs: [100, 300, 200],
	unpinUs: [50, 60, 70],
	hostUs: [10, 20],
	relayUs: [5],
	timeouts: 1,
	fastDecisions: 2,
	budgetWaits: 0,
	stolenPercent: 1.23456,
	firstPinUs: 1500,
};
const run2: RunSamples = {
	pinUs: [1000, 400],
	unpinUs: [80, 90],
	hostUs: [30],
	relayUs: [],
	timeouts: 2,
	fastDecisions: 1,
	budgetWaits: 4,
	stolenPercent: 0,
	firstPinUs: undefined,
};

t.test('series: the runs pooled, with the p99 and the stolen time of each run', async (t) => {
	t.strictSame(series([run1, run2], 5000, 5), {
		pauseUs: 5000,
		guestCpuPercent: 5,
		perRunRoundTripP99Us: [300, 1000],
		perRunStolenPercent: [1.23, 0],
		roundTripUs: {n: 5, p50: 300, p90: 1000, p99: 1000, max: 1000},
		releaseUs: {n: 5, p50: 70, p90: 90, p99: 90, max: 90},
		hostSideUs: {n: 3, p50: 20, p90: 30, p99: 30, max: 30},
		guestRelayUs: {n: 1, p50: 5, p90: 5, p99: 5, max: 5},
		timeouts: 3,
		fastDecisions: 3,
		budgetWaits: 4,
		firstPin: {roundTripUs: [1500], missed: 1},
		samples: {pinUs: [100, 300, 200, 1000, 400], unpinUs: [50, 60, 70, 80, 90], hostUs: [10, 20, 30], relayUs: [5]},
	});
	t.strictSame(run1.pinUs, [100, 300, 200], "the runs' samples are left in their order");
	const none = series([], 0, 5);
	t.strictSame([none.roundTripUs.n, none.perRunRoundTripP99Us, none.timeouts], [0, [], 0], 'no runs: no samples');
});

function result(over: Partial<HintLatencyResult> = {}): HintLatencyResult {
	return {
		bench: 'hint-latency',
		date: '2026-12-02T05:00:00.000Z',
		host: {name: 'vm-10', cpus: 2, model: 'Some CPU', kernel: '6.1.0'},
		commit: 'abc1234',
		hints: 3,
		warmup: 1,
		runs: 2,
		backToBack: series([run1, run2], 0, 0),
		sparse: series([{...run2, pinUs: [2500], hostUs: [], fastDecisions: 0}], 5000, 0),
		moveFloor: {error: 'not measured: no CAP_SYS_NICE'},
		idleCpuPercent: 0.555,
		...over,
	};
}

t.test('the report: percentiles per line, targets met or MISSED, a target without samples not measured', async (t) => {
	const lines = hintLatencyReport(result()).split('\n');
	t.ok(lines.includes('hint latency on vm-10 (2 CPUs, Some CPU), guest under TCG, 2 vCPUs, 2 runs of 3 hints pooled'), 'the header');
	t.equal(
		lines.find((l) => l.startsWith('round trip, guest clock (pin)')),
		'round trip, guest clock (pin)      n=   5  p50   0.30 ms  p90   1.00 ms  p99   1.00 ms  max   1.00 ms',
		'the first series: back to back',
	);
	t.ok(lines.includes('host side (visible → applied)      n=   3  p50     20 µs  p90     30 µs  p99     30 µs  max     30 µs'), 'host side in µs');
	t.ok(lines.includes('decisions by the native fast path    3 of 3'));
	t.ok(lines.includes('round trip p99 per run               0.30 ms, 1.00 ms'));
	t.ok(lines.includes('CPU time stolen by the hypervisor    1.23 %, 0.00 % (per run)'));
	t.ok(
		lines.includes('pin the moment the guest is ready    1.50 ms (per run); MISSED in 1 run (no answer in 10 s)'),
		'a run whose first pin got no answer is counted, not hidden',
	);
	t.strictSame(
		lines.filter((l) => l.startsWith('targets')),
		[
			'targets (issue): round trip p99 < 2 ms: met; host side p99 < 50 µs: met',
			'targets (issue): round trip p99 < 2 ms: MISSED; host side p99 < 50 µs: not measured',
		],
		'back to back met; sparse: 2.5 ms missed, no host-side samples',
	);
	t.ok(lines.includes("this machine's floor for a sparse pin's move: not measured: no CAP_SYS_NICE"));
	t.ok(lines.includes('pvrun CPU while the guest idles     0.56 % of one core (target < 1 %: met)'));
});

t.test('the report: a paced series with the default budget has no target, and results from before it have none', async (t) => {
	const text = hintLatencyReport(result({paced: series([run1], 100_000, 5)}));
	const at = text.indexOf('\npaced (100 ms before each pin, --pv-guest-cpu 5: a well-behaved guest)\n');
	t.ok(at > text.indexOf('\nsparse ('), 'after the sparse series');
	t.equal(text.split('\n').filter((l) => l.startsWith('targets')).length, 2, 'targets for back to back and sparse only');
	t.match(text.slice(at), /\(no target: a machine-bound tail at long pauses/);
	t.match(text.slice(at), /\nwaits for the guest budget {11}0\n/, 'and how often the budget made the guest wait');
	t.notMatch(text.slice(0, at), /waits for the guest budget/, 'not for the series with the budget off');
	t.notMatch(hintLatencyReport(result()), /\npaced /, 'an older result: no paced section');
});

t.test("the report: the floor's percentiles, once, after the sparse series; idle CPU over 1 % missed", async (t) => {
	const p = (v: number) => ({n: 3, p50: v, p90: v, p99: v, max: v});
	const text = hintLatencyReport(result({moveFloor: {from: 0, to: 1, runnableToIdleUs: p(42), sleepingUs: p(7)}, idleCpuPercent: 1.2}));
	const floor = text.indexOf('floor: runnable thread → idle CPU 1');
	t.ok(floor > text.indexOf('\nsparse (5 ms before each pin, --pv-guest-cpu off)\n'), 'in the sparse section');
	t.equal(text.indexOf('floor: runnable', floor + 1), -1, 'once');
	t.match(text, /^floor: runnable thread → idle CPU 1 +n= {3}3 {2}p50 {5}42 µs/m);
	t.match(text, /^ {2}\(a sleeping thread, for reference\) n= {3}3 {2}p50 {6}7 µs/m);
	t.match(text, /^pvrun CPU while the guest idles {5}1\.20 % of one core \(target < 1 %: MISSED\)$/m);
});
