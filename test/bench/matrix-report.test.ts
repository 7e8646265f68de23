// The benchmark matrix's report: medians and spread without the warm-ups,
// pvrun's ratios to the baselines of the same run, the targets met,
// missed or not measured, and matrix.md and the SVG charts rendered from a
// result (no guest runs here; test/bench/matrix.test.ts runs the real thing).
import fs from 'node:fs';
import path from 'node:path';
import {Ajv} from 'ajv';
import t from 'tap';
import {busyHostWarning, chartSpec, matrixReport, quickWarning, summarize} from '../../src/bench/matrix-report.js';
import {scenarios} from '../../src/bench/matrix.js';
import type {MatrixResult, Sample} from '../../src/bench/matrix-result.js';
import {quickOptions, type ConfigName} from '../../src/bench/options.js';
import {packageRoot} from '../../src/util/paths.js';

const s = (config: ConfigName, iterPerSec: number, rep = 0, warmup = false): Sample => ({
	scenario: 'a',
	config,
	rep,
	order: 0,
	workload: 'poll',
	warmup,
	values: {iterPerSec, maxStallUs: 10, vmWorkPerSec: 100},
});

/** A result of scenario a around `samples` (the quick run's options unless given). */
function resultOf(samples: Sample[], changes: Partial<MatrixResult> = {}): MatrixResult {
	return {
		schema: 'pvrun-bench-matrix/1',
		date: '2026-12-04T08:00:00.000Z',
		environment: {host: 'vm', cpus: 2, cpuModel: 'AMD EPYC', kernel: '6.18', qemu: 'QEMU 7.2.0', accel: 'tcg', pvrun: '0.1.0', commit: 'abc1234', node: 'v20'},
		options: quickOptions,
		scenarios: [scenarios.a],
		samples,
		summary: summarize(samples),
		failures: [],
		durationSeconds: 60,
		...changes,
	};
}

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

t.test('the ceiling: each configuration against plain, the gap it closes, a target above the ceiling said as such', async (t) => {
	const summary = summarize([s('plain', 100), s('static', 150), s('pvrun', 180), s('pvrun-act', 175), s('ceiling', 200)]);
	const poll = summary.find((x) => x.metric === 'iterPerSec');
	t.same(poll?.ratios, {
		static: {vsPlain: 1.5, gapClosed: 0.5},
		pvrun: {vsPlain: 1.8, gapClosed: 0.8},
		'pvrun-act': {vsPlain: 1.75, gapClosed: 0.75},
		ceiling: {vsPlain: 2},
	});
	t.equal(poll?.actOverPvrun, 175 / 180);
	t.same(poll?.target, {text: '≥ 3x plain and ≥ 1.5x static', met: false, why: 'above the ceiling (2.00x plain)'}, 'asks 3x where the machine allows 2x');
	const nogap = summarize([s('plain', 100), s('pvrun', 120), s('ceiling', 100)]).find((x) => x.metric === 'iterPerSec');
	t.same(nogap?.ratios?.pvrun, {vsPlain: 1.2}, 'no gap: no share of it');
	const below = summarize([s('plain', 100), s('pvrun', 120), s('ceiling', 90)]).find((x) => x.metric === 'iterPerSec');
	t.same(below?.ratios?.pvrun, {vsPlain: 1.2}, 'a ceiling measured below plain: no share of a negative gap');
	const stalls = (plain: number, pvrun: number, ceiling: number) =>
		summarize(
			(
				[
					['plain', plain],
					['pvrun', pvrun],
					['ceiling', ceiling],
				] as const
			).map(([c, us]) => ({...s(c, 100), values: {iterPerSec: 100, maxStallUs: us, vmWorkPerSec: 100}})),
		).find((x) => x.metric === 'maxStallUs')?.ratios?.pvrun?.gapClosed;
	t.equal(stalls(40, 30, 20), 0.5, 'lower is better: half of the way down from plain to the ceiling');
	t.equal(stalls(40, 30, 50), undefined, 'lower is better: a ceiling above plain is no gap');
});

/** A uspin sample: ops/s per lock and length, as parseResultLine flattens them. */
const u = (config: ConfigName, ops: Partial<Record<string, number>>, scenario: 'a' | 'd' = 'a'): Sample => ({
	scenario,
	config,
	rep: 0,
	order: 0,
	workload: 'uspin',
	warmup: false,
	values: Object.fromEntries(Object.entries(ops).map(([k, v]) => [`${k}.opsPerSec`, v ?? 0])),
});

t.test("uspin's targets: the gap from plain pthread_spin_lock to the ceiling, where it is 1.2x or more", async (t) => {
	const summary = summarize([
		u('plain', {'spin-10': 100, 'mutex-10': 90, 'pvcs-10': 95, 'spin-cs-10': 100, 'spin-1': 100, 'spin-cs-1': 100, 'pvcs-1': 100, 'mutex-1': 80}),
		u('ceiling', {'spin-10': 150, 'spin-1': 110}),
		u('pvrun-act', {'pvcs-10': 135, 'spin-cs-10': 112, 'spin-1': 100, 'spin-cs-1': 105, 'pvcs-1': 99}),
	]);
	const target = (metric: string) => summary.find((x) => x.metric === metric)?.target;
	t.same(target('pvcs-10.opsPerSec')?.met, true, 'pvcs: 70 % of a 1.5x gap, and above plain spin and mutex');
	t.same(target('spin-cs-10.opsPerSec')?.met, false, 'boost alone: 24 % of the gap, under 30 %');
	t.same(target('spin-cs-1.opsPerSec'), {
		text: 'act (boost alone): ≥ 30 % of the gap from plain spin to the ceiling (where ≥ 1.2x)',
		met: null,
		why: 'no gap of 1.2x here',
	});
	t.same(target('pvcs-1.opsPerSec')?.met, false, 'no gap: still at least plain spin and mutex, and 99 is not');
});

t.test('time held while stalled: act 80 % below plain, per marked lock, in both scenarios', async (t) => {
	const stalled = (config: ConfigName, scenario: 'a' | 'd', v: Record<string, number>): Sample => ({
		...u(config, {}, scenario),
		values: Object.fromEntries(Object.entries(v).map(([k, x]) => [`${k}.stalledMsPerSec`, x])),
	});
	const summary = summarize([stalled('plain', 'd', {'spin-cs-10': 300, 'pvcs-10': 50}), stalled('pvrun-act', 'd', {'spin-cs-10': 60, 'pvcs-10': 11})]);
	const target = (metric: string) => summary.find((x) => x.metric === metric)?.target;
	t.same(target('spin-cs-10.stalledMsPerSec'), {text: 'act: ≤ 0.2x plain (80 % less)', met: true});
	t.same(target('pvcs-10.stalledMsPerSec')?.met, false, '11 of 50 is 78 % less');
	t.equal(summary.find((x) => x.metric === 'spin-cs-10.stalledMsPerSec')?.unit, 'ms/s');
});

t.test('matrix.md and one chart per scenario', async (t) => {
	const samples = [s('plain', 100), s('plain', 120, 1), s('static', 200), s('pvrun', 330), s('pvrun', 350, 1)];
	const result = resultOf(samples, {
		failures: [
			{scenario: 'a', config: 'static', rep: 1, error: 'the guest did not boot within 120 s'},
			{
				scenario: 'a',
				config: 'pvrun',
				rep: 0,
				error: 'guest console did not show /status/ within 84000 ms; last lines:',
				console: ['[ 1.0] booted', 'pvhint: vcpu=1 n=3'],
			},
		],
	});
	const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'bench', 'schema', 'matrix.schema.json'), 'utf8')) as object;
	const validate = new Ajv({allErrors: true}).compile(schema);
	t.ok(validate(result), `a result with failed boots validates: ${JSON.stringify(validate.errors?.slice(0, 3) ?? [])}`);
	const files = await matrixReport(result);
	t.same(Object.keys(files).sort(), ['matrix-a.svg', 'matrix.md']);
	const md = files['matrix.md'] ?? '';
	t.match(md, /^# pvrun benchmark matrix \(quick\)\n/);
	t.match(md, '2026-12-04 08:00 UTC on vm: 2 CPUs (AMD EPYC), kernel 6.18, QEMU 7.2.0, accelerator tcg; pvrun 0.1.0 (abc1234).');
	t.match(md, `## Scenario a: ${scenarios.a.title}`);
	t.match(
		md,
		'| poll iterations (/s) | 110 (100–120) | 200 | 340 (330–350) | — | — | 3.09x (2.75–3.50) | 1.70x (1.65–1.75) | — | — | —, — | ≥ 3x plain and ≥ 1.5x static: met |',
		'each ratio with the range its repetitions allow',
	);
	t.match(
		md,
		'| poll longest stall (µs) | 10.0 (10.0–10.0) | 10.0 | 10.0 (10.0–10.0) | — | — | 1.00x (1.00–1.00) | 1.00x (1.00–1.00) | — | — | —, — | ≤ 0.5x plain: **missed** |',
	);
	t.match(md, `**${quickWarning}**`, 'the quick run says it is a smoke test');
	const spec = JSON.stringify(chartSpec('a', 'title', result.summary));
	t.match(spec, /"scale":\{"type":"log"\}/, 'the chart on a log scale');
	t.match(spec, /"values":\[\{"one":1\}\]/, 'with a line at 1');
	t.match(spec, /"x2":\{"field":"high"\}/, 'and min–max bars');
	t.match(
		md,
		'## Failed boots\n\n- scenario a, static, rep 2: the guest did not boot within 120 s\n' +
			"- scenario a, pvrun, rep 1: guest console did not show /status/ within 84000 ms; last lines: (the console's last line: `pvhint: vcpu=1 n=3`)\n",
		'with the last line the console showed, if any',
	);
	t.match(files['matrix-a.svg'] ?? '', /^<svg[^>]*>[\s\S]*Scenario a: relative to plain QEMU[\s\S]*<\/svg>$/);
});

t.test('the host before the run: its busy share and load recorded, a warning from a quarter of its CPU time', async (t) => {
	const samples = [s('plain', 100), s('pvrun', 330)];
	const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'bench', 'schema', 'matrix.schema.json'), 'utf8')) as object;
	const validate = new Ajv({allErrors: true}).compile(schema);
	const before = (busyBefore: number) => resultOf(samples, {environment: {...resultOf(samples).environment, busyBefore, loadBefore: [1.5, 1.2, 0.9]}});
	const quiet = before(0.03);
	t.ok(validate(quiet), `validates: ${JSON.stringify(validate.errors?.slice(0, 3) ?? [])}`);
	t.equal(busyHostWarning(quiet.environment), undefined, 'a host 3 % busy: no warning (its load average is not the test)');
	const quietMd = (await matrixReport(quiet))['matrix.md'] ?? '';
	t.match(quietMd, "pvrun 0.1.0 (abc1234); before the run, 3 % of the CPUs' time busy (load average 1.5, 1.2, 0.9).", 'both in the header');
	t.notMatch(quietMd, /busy before the run/);
	const busy = before(0.5);
	const warning = busyHostWarning(busy.environment) ?? '';
	t.match(warning, /^The host was busy before the run: 50 % of its 2 CPUs' time over a second\./);
	t.match((await matrixReport(busy))['matrix.md'] ?? '', `**${warning}**`, 'and in matrix.md, in bold');
	t.equal(busyHostWarning(resultOf(samples).environment), undefined, 'results from before it was recorded: nothing said');
	t.notOk(validate(before(1.5)), 'a share above 1 is refused by the schema');
});

t.test('the overhead row: pvrun with critical sections observed over pvrun, with the 3 % target', async (t) => {
	const samples = [s('plain', 100), s('pvrun', 300), s('pvrun', 320, 1), {...s('pvrun-cs', 305), values: {iterPerSec: 305, maxStallUs: 11, vmWorkPerSec: 90}}];
	const summary = summarize(samples);
	const poll = summary.find((x) => x.metric === 'iterPerSec');
	t.equal(poll?.csOverPvrun, 305 / 310, 'observe / pvrun, medians of the same run');
	t.equal(poll?.vsPlain, 310 / 100, "pvrun's own ratios are pvrun's, not the observing run's");
	const result = resultOf(samples, {options: {...quickOptions, configs: ['plain', 'pvrun', 'pvrun-cs']}});
	const md = (await matrixReport(result))['matrix.md'] ?? '';
	t.match(md, '### Overhead of observing critical sections (scenario a)');
	t.match(md, '| poll iterations (/s) | 310 (300–320) | 305 | 0.98x | yes |', 'higher is better: within 3 %');
	t.match(md, '| poll longest stall (µs) | 10.0 (10.0–10.0) | 11.0 | 1.10x | **no** |', 'lower is better: 10 % worse');
	t.match(md, "| VM's total work (poll + busy threads) (/s) | 100 (100–100) | 90.0 | 0.90x | **no** |", 'every metric with both');
	t.notMatch(md, /Acting on critical sections/, 'no acting run: no table of its cost');
	t.notMatch(
		(await matrixReport({...result, samples: samples.slice(0, 3), summary: summarize(samples.slice(0, 3))}))['matrix.md'] ?? '',
		/Overhead/,
		'no observing run: no overhead table',
	);
});

t.test("acting's cost where the workload has no sections: act over pvrun, with the 3 % target", async (t) => {
	const samples = [s('plain', 100), s('pvrun', 300), {...s('pvrun-act', 296), values: {iterPerSec: 296, maxStallUs: 10, vmWorkPerSec: 100}}];
	const result = resultOf(samples, {options: {...quickOptions, configs: ['plain', 'pvrun', 'pvrun-act']}});
	const md = (await matrixReport(result))['matrix.md'] ?? '';
	t.match(md, '### Acting on critical sections, where the workload has none (scenario a)');
	t.match(md, '| poll iterations (/s) | 300 | 296 | 0.99x | yes |');
	t.match(md, '| poll iterations (/s) | 100 | — | 300 | 296 | — | 3.00x | — | 2.96x | — | —, — |', "act's column in the main table");
});
