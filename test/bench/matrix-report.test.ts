// The benchmark matrix's report: medians and spread without the warm-ups,
// pvrun's ratios to the baselines of the same run, the targets met,
// missed or not measured, and matrix.md and the SVG charts rendered from a
// result (no guest runs here; test/bench/matrix.test.ts runs the real thing).
import t from 'tap';
import {summarize, matrixReport} from '../../src/bench/matrix-report.js';
import {scenarios} from '../../src/bench/matrix.js';
import type {MatrixResult, Sample} from '../../src/bench/matrix-result.js';
import {quickOptions, type ConfigName} from '../../src/bench/options.js';

const s = (config: ConfigName, iterPerSec: number, rep = 0, warmup = false): Sample => ({
	scenario: 'a',
	config,
	rep,
	order: 0,
	workload: 'poll',
	warmup,
	values: {iterPerSec, maxStallUs: 10, vmWorkPerSec: 100},
});

t.test('summary: medians, ratios from the same run, targets', async (t) => {
	const summary = summarize([s('plain', 100), s('plain', 120, 1), s('plain', 1e9, 0, true), s('static', 200), s('pvrun', 330), s('pvrun', 350, 1)]);
	const poll = summary.find((x) => x.metric === 'iterPerSec');
	t.same(poll?.configs.plain, {n: 2, median: 110, min: 100, max: 120}, 'warm-ups left out');
	t.equal(poll?.vsPlain, 340 / 110);
	t.equal(poll?.vsStatic, 340 / 200);
	t.same(poll?.target, {text: '≥ 3x plain and ≥ 1.5x static', met: true});
	const stall = summary.find((x) => x.metric === 'maxStallUs');
	t.same(stall?.target, {text: '≤ 0.5x plain', met: false}, 'the same stall is not half');
});

t.test('a target is not measured when a baseline is missing', async (t) => {
	const summary = summarize([s('plain', 100), s('pvrun', 400)]);
	const poll = summary.find((x) => x.metric === 'iterPerSec');
	t.equal(poll?.vsStatic, undefined);
	t.same(poll?.target, {text: '≥ 3x plain and ≥ 1.5x static', met: null}, 'no static run: neither met nor missed');
	t.same(summarize([s('plain', 0), s('pvrun', 400)]).find((x) => x.metric === 'iterPerSec')?.vsPlain, undefined, 'no ratio to a zero baseline');
});

t.test('matrix.md and one chart per scenario', async (t) => {
	const samples = [s('plain', 100), s('plain', 120, 1), s('static', 200), s('pvrun', 330), s('pvrun', 350, 1)];
	const result: MatrixResult = {
		schema: 'pvrun-bench-matrix/1',
		date: '2026-12-04T08:00:00.000Z',
		environment: {host: 'vm', cpus: 2, cpuModel: 'AMD EPYC', kernel: '6.18', qemu: 'QEMU 7.2.0', accel: 'tcg', pvrun: '0.1.0', commit: 'abc1234', node: 'v20'},
		options: quickOptions,
		scenarios: [scenarios.a],
		samples,
		summary: summarize(samples),
		failures: [{scenario: 'a', config: 'static', rep: 1, error: 'the guest did not boot within 120 s'}],
		durationSeconds: 60,
	};
	const files = await matrixReport(result);
	t.same(Object.keys(files).sort(), ['matrix-a.svg', 'matrix.md']);
	const md = files['matrix.md'] ?? '';
	t.match(md, /^# pvrun benchmark matrix \(quick\)\n/);
	t.match(md, '2026-12-04 08:00 UTC on vm: 2 CPUs (AMD EPYC), kernel 6.18, QEMU 7.2.0, accelerator tcg; pvrun 0.1.0 (abc1234).');
	t.match(md, `## Scenario a: ${scenarios.a.title}`);
	t.match(md, '| poll iterations (/s) | 110 (100–120) | 200 | 340 (330–350) | 3.09x | 1.70x | ≥ 3x plain and ≥ 1.5x static: met |');
	t.match(md, '| poll longest stall (µs) | 10.0 (10.0–10.0) | 10.0 | 10.0 (10.0–10.0) | 1.00x | 1.00x | ≤ 0.5x plain: **missed** |');
	t.match(md, '## Failed boots\n\n- scenario a, static, rep 2: the guest did not boot within 120 s\n');
	t.match(files['matrix-a.svg'] ?? '', /^<svg[^>]*>[\s\S]*Scenario a: relative to plain QEMU[\s\S]*<\/svg>$/);
});

t.test('the overhead row: pvrun with critical sections observed over pvrun, with the 3 % target', async (t) => {
	const samples = [s('plain', 100), s('pvrun', 300), s('pvrun', 320, 1), {...s('pvrun-cs', 305), values: {iterPerSec: 305, maxStallUs: 11, vmWorkPerSec: 90}}];
	const summary = summarize(samples);
	const poll = summary.find((x) => x.metric === 'iterPerSec');
	t.equal(poll?.csOverPvrun, 305 / 310, 'observe / pvrun, medians of the same run');
	t.equal(poll?.vsPlain, 310 / 100, "pvrun's own ratios are pvrun's, not the observing run's");
	const result: MatrixResult = {
		schema: 'pvrun-bench-matrix/1',
		date: '2026-12-04T08:00:00.000Z',
		environment: {host: 'vm', cpus: 2, cpuModel: 'AMD EPYC', kernel: '6.18', qemu: 'QEMU 7.2.0', accel: 'tcg', pvrun: '0.1.0', commit: 'abc1234', node: 'v20'},
		options: {...quickOptions, configs: ['plain', 'pvrun', 'pvrun-cs']},
		scenarios: [scenarios.a],
		samples,
		summary,
		failures: [],
		durationSeconds: 60,
	};
	const md = (await matrixReport(result))['matrix.md'] ?? '';
	t.match(md, '### Overhead of observing critical sections (scenario a)');
	t.match(md, '| poll iterations (/s) | 310 (300–320) | 305 | 0.98x | yes |', 'higher is better: within 3 %');
	t.match(md, '| poll longest stall (µs) | 10.0 (10.0–10.0) | 11.0 | 1.10x | **no** |', 'lower is better: 10 % worse');
	t.match(md, "| VM's total work (poll + busy threads) (/s) | 100 (100–100) | 90.0 | 0.90x | **no** |", 'every metric with both');
	t.notMatch(
		(await matrixReport({...result, samples: samples.slice(0, 3), summary: summarize(samples.slice(0, 3))}))['matrix.md'] ?? '',
		/Overhead/,
		'no observing run: no overhead table',
	);
});
