// The benchmark matrix's numbers: per scenario, workload and metric, the
// median and spread of each configuration, pvrun's ratio to plain QEMU and to
// static pinning from the same run, and the issue's targets, met or missed.
// Rendered as a Markdown table and one SVG chart per scenario (vega-lite).
import * as vega from 'vega';
import {compile, type TopLevelSpec} from 'vega-lite';
import {spread} from '../util/stats.js';
import type {MatrixResult, Sample, Stats, Summary} from './matrix-result.js';
import {configNames, type ConfigName, type ScenarioId, type WorkloadName} from './options.js';

/** uspin's locks: pthread_spin_lock, the same with the section marked for pvrun, pthread_mutex_lock, pvrun's lock. */
export const uspinLocks = ['spin', 'spin-cs', 'mutex', 'pvcs'] as const;

export interface Metric {
	workload: WorkloadName;
	key: string;
	label: string;
	unit: string;
	better: 'higher' | 'lower';
}

/** What the report shows of each workload's result line. */
export const metrics: Metric[] = [
	{workload: 'poll', key: 'iterPerSec', label: 'poll iterations', unit: '/s', better: 'higher'},
	{workload: 'poll', key: 'maxStallUs', label: 'poll longest stall', unit: 'µs', better: 'lower'},
	{workload: 'poll', key: 'vmWorkPerSec', label: "VM's total work (poll + busy threads)", unit: '/s', better: 'higher'},
	{workload: 'pingpong', key: 'roundTripsPerSec', label: 'pingpong round trips', unit: '/s', better: 'higher'},
	{workload: 'pingpong', key: 'p99Us', label: 'pingpong round trip p99', unit: 'µs', better: 'lower'},
	{workload: 'sleeper', key: 'p50Us', label: 'sleeper lateness p50', unit: 'µs', better: 'lower'},
	{workload: 'sleeper', key: 'p99Us', label: 'sleeper lateness p99', unit: 'µs', better: 'lower'},
	{workload: 'sleeper', key: 'burnerIterPerSec', label: "sleeper's busy neighbours' work", unit: '/s', better: 'higher'},
	{workload: 'locks', key: 'opsPerSec', label: 'locks operations', unit: '/s', better: 'higher'},
	{workload: 'hintlat', key: 'pinP50Us', label: 'hint round trip p50', unit: 'µs', better: 'lower'},
	{workload: 'hintlat', key: 'pinP99Us', label: 'hint round trip p99', unit: 'µs', better: 'lower'},
	...[1, 10, 50].flatMap((us) =>
		uspinLocks.flatMap((lock): Metric[] => [
			{workload: 'uspin', key: `${lock}-${us}.opsPerSec`, label: `uspin ${lock}, ${us} µs sections`, unit: '/s', better: 'higher'},
			{workload: 'uspin', key: `${lock}-${us}.p99WaitUs`, label: `uspin ${lock}, ${us} µs: acquisition p99`, unit: 'µs', better: 'lower'},
			// The marked sections' stalls: what acting is for (docs/benchmarks.md says how they are counted).
			...(lock === 'spin-cs' || lock === 'pvcs'
				? [
						{
							workload: 'uspin',
							key: `${lock}-${us}.stalledMsPerSec`,
							label: `uspin ${lock}, ${us} µs: held while stalled`,
							unit: 'ms/s',
							better: 'lower',
						} as const,
					]
				: []),
		]),
	),
	{workload: 'uspin', key: 'neighbourCpuShare', label: "uspin: the busy host processes' CPU share", unit: '%', better: 'higher'},
	{workload: 'klock', key: 'opsPerSec', label: 'klock mmap/munmap', unit: '/s', better: 'higher'},
	{workload: 'klock', key: 'neighbourCpuShare', label: "klock: the busy host processes' CPU share", unit: '%', better: 'higher'},
	// Two VMs side by side (scenario g): each one's result, and how fairly the host shared itself between them.
	{workload: 'poll', key: 'vm1.iterPerSec', label: 'VM 1: poll iterations', unit: '/s', better: 'higher'},
	{workload: 'poll', key: 'vm2.iterPerSec', label: 'VM 2: poll iterations', unit: '/s', better: 'higher'},
	{workload: 'poll', key: 'vm1.vmWorkPerSec', label: "VM 1: the VM's total work", unit: '/s', better: 'higher'},
	{workload: 'poll', key: 'vm2.vmWorkPerSec', label: "VM 2: the VM's total work", unit: '/s', better: 'higher'},
	{workload: 'poll', key: 'jain', label: "Jain's fairness index of the two VMs' poll iterations", unit: '', better: 'higher'},
	{workload: 'poll', key: 'exclusiveConflicts', label: 'samples with a CPU exclusive in both VMs at once', unit: '', better: 'lower'},
];

/** The issues' targets (this 2-CPU machine under TCG). */
export interface Target {
	scenario: ScenarioId;
	workload: WorkloadName;
	key: string;
	text: string;
	/** The ratio to plain QEMU the target asks of pvrun, where it asks one: above the ceiling's, it cannot be met. */
	asks?: number;
	/** Met, missed, or undefined (not measured; not applicable: `why`). */
	check(s: Summary, rows: readonly Summary[]): boolean | undefined;
	why?(s: Summary, rows: readonly Summary[]): string | undefined;
}

const both = (a: boolean | undefined, b: boolean | undefined) => (a === undefined || b === undefined ? undefined : a && b);
const at = (x: number | undefined, ok: (v: number) => boolean) => (x === undefined ? undefined : ok(x));
const median = (s: Summary | undefined, c: ConfigName) => s?.configs[c]?.median;

/**
 * What share of the gap between `base` and `ceiling` the value closes (1: all of it); undefined
 * where there is no gap: the ceiling no better than the base, in the metric's direction (a
 * ceiling measured below plain is no ceiling, and a share of a negative gap means nothing).
 */
export function gapClosed(
	value: number | undefined,
	base: number | undefined,
	ceiling: number | undefined,
	better: 'higher' | 'lower' = 'higher',
): number | undefined {
	if (value === undefined || base === undefined || ceiling === undefined) return undefined;
	if (better === 'higher' ? ceiling <= base : ceiling >= base) return undefined;
	return (value - base) / (ceiling - base);
}

/** The critical-section issue's rule: a gap counts where the ceiling is at least 1.2x plain pthread_spin_lock. */
function spinGap(rows: readonly Summary[], us: number): {base?: number; ceiling?: number; big: boolean} {
	const spin = rows.find((r) => r.metric === `spin-${us}.opsPerSec`);
	const base = median(spin, 'plain');
	const ceiling = median(spin, 'ceiling');
	return {
		...(base !== undefined ? {base} : {}),
		...(ceiling !== undefined ? {ceiling} : {}),
		big: base !== undefined && ceiling !== undefined && ceiling >= 1.2 * base,
	};
}

export const targets: Target[] = [
	{
		scenario: 'a',
		workload: 'poll',
		key: 'iterPerSec',
		text: '≥ 3x plain and ≥ 1.5x static',
		asks: 3,
		check: (s) =>
			both(
				at(s.vsPlain, (p) => p >= 3),
				at(s.vsStatic, (v) => v >= 1.5),
			),
	},
	{scenario: 'a', workload: 'poll', key: 'maxStallUs', text: '≤ 0.5x plain', check: (s) => at(s.vsPlain, (p) => p <= 0.5)},
	{scenario: 'g', workload: 'poll', key: 'vm1.iterPerSec', text: '≥ 1x plain', check: (s) => at(s.vsPlain, (p) => p >= 1)},
	{scenario: 'g', workload: 'poll', key: 'vm2.iterPerSec', text: '≥ 1x plain', check: (s) => at(s.vsPlain, (p) => p >= 1)},
	{scenario: 'g', workload: 'poll', key: 'jain', text: 'pvrun ≥ 0.95', check: (s) => at(median(s, 'pvrun'), (j) => j >= 0.95)},
	{scenario: 'g', workload: 'poll', key: 'exclusiveConflicts', text: 'pvrun: 0 in every boot', check: (s) => at(s.configs.pvrun?.max, (n) => n === 0)},
	{scenario: 'a', workload: 'poll', key: 'vmWorkPerSec', text: '≥ 1x plain', check: (s) => at(s.vsPlain, (p) => p >= 1)},
	{
		scenario: 'a',
		workload: 'pingpong',
		key: 'roundTripsPerSec',
		text: '≥ 2x plain and ≥ 1.3x static',
		asks: 2,
		check: (s) =>
			both(
				at(s.vsPlain, (p) => p >= 2),
				at(s.vsStatic, (v) => v >= 1.3),
			),
	},
	{scenario: 'a', workload: 'sleeper', key: 'p99Us', text: '≤ 1.1x plain', check: (s) => at(s.vsPlain, (p) => p <= 1.1)},
	...[1, 10, 50].flatMap((us): Target[] => [
		{
			scenario: 'a',
			workload: 'uspin',
			key: `pvcs-${us}.opsPerSec`,
			text: 'act: ≥ 60 % of the gap from plain spin to the ceiling (where ≥ 1.2x), ≥ plain spin and mutex',
			check: (s, rows) => {
				const act = median(s, 'pvrun-act');
				const g = spinGap(rows, us);
				const better = Math.max(
					median(
						rows.find((r) => r.metric === `spin-${us}.opsPerSec`),
						'plain',
					) ?? Infinity,
					median(
						rows.find((r) => r.metric === `mutex-${us}.opsPerSec`),
						'plain',
					) ?? Infinity,
				);
				if (act === undefined || !Number.isFinite(better)) return undefined;
				const closes = g.big ? at(gapClosed(act, g.base, g.ceiling), (c) => c >= 0.6) : true;
				return both(closes, act >= better);
			},
		},
		{
			scenario: 'a',
			workload: 'uspin',
			key: `spin-cs-${us}.opsPerSec`,
			text: 'act (boost alone): ≥ 30 % of the gap from plain spin to the ceiling (where ≥ 1.2x)',
			check: (s, rows) => {
				const g = spinGap(rows, us);
				return g.big ? at(gapClosed(median(s, 'pvrun-act'), g.base, g.ceiling), (c) => c >= 0.3) : undefined;
			},
			why: (_s, rows) => (spinGap(rows, us).big ? undefined : 'no gap of 1.2x here'),
		},
		...(['a', 'd'] as const).flatMap((scenario) =>
			(['spin-cs', 'pvcs'] as const).map((lock): Target => ({
				scenario,
				workload: 'uspin',
				key: `${lock}-${us}.stalledMsPerSec`,
				text: 'act: ≤ 0.2x plain (80 % less)',
				check: (s) => {
					const act = median(s, 'pvrun-act');
					const plain = median(s, 'plain');
					return act === undefined || plain === undefined ? undefined : act <= 0.2 * plain;
				},
			})),
		),
		{
			scenario: 'd',
			workload: 'uspin',
			key: `pvcs-${us}.opsPerSec`,
			text: 'act: ≥ 1.3x plain spin',
			check: (s, rows) => {
				const act = median(s, 'pvrun-act');
				const base = spinGap(rows, us).base;
				return act === undefined || base === undefined ? undefined : act >= 1.3 * base;
			},
		},
	]),
	{
		scenario: 'a',
		workload: 'klock',
		key: 'opsPerSec',
		text: 'act: ≥ 30 % of the gap to the ceiling',
		check: (s) => at(gapClosed(median(s, 'pvrun-act'), median(s, 'plain'), median(s, 'ceiling')), (c) => c >= 0.3),
		why: (s) => (gapClosed(median(s, 'pvrun-act'), median(s, 'plain'), median(s, 'ceiling')) === undefined ? 'no gap here' : undefined),
	},
	{
		scenario: 'd',
		workload: 'uspin',
		key: 'neighbourCpuShare',
		text: 'act: within ±3 % of plain',
		check: (s) => {
			const act = median(s, 'pvrun-act');
			const plain = median(s, 'plain');
			return act === undefined || plain === undefined || plain === 0 ? undefined : Math.abs(act / plain - 1) <= 0.03;
		},
	},
];

/** Medians, spread and ratios of every metric that has measurements (warm-ups left out). */
export function summarize(samples: Sample[]): Summary[] {
	const out: Summary[] = [];
	const scenarioIds = [...new Set(samples.map((s) => s.scenario))];
	for (const scenario of scenarioIds) {
		for (const m of metrics) {
			const configs: Summary['configs'] = {};
			for (const config of configNames) {
				const values = samples
					.filter((s) => !s.warmup && s.scenario === scenario && s.workload === m.workload && s.config === config)
					.map((s) => s.values[m.key])
					.filter((v): v is number => v !== undefined);
				if (values.length) configs[config] = spread(values);
			}
			if (Object.keys(configs).length === 0) continue;
			const entry: Summary = {scenario, workload: m.workload, metric: m.key, label: m.label, unit: m.unit, better: m.better, configs};
			const ratio = (base: Stats | undefined) => (configs.pvrun && base && base.median > 0 ? configs.pvrun.median / base.median : undefined);
			const vsPlain = ratio(configs.plain);
			const vsStatic = ratio(configs.static);
			if (vsPlain !== undefined) entry.vsPlain = vsPlain;
			if (vsStatic !== undefined) entry.vsStatic = vsStatic;
			const cs = configs['pvrun-cs'];
			if (cs && configs.pvrun && configs.pvrun.median > 0) entry.csOverPvrun = cs.median / configs.pvrun.median;
			const act = configs['pvrun-act'];
			if (act && configs.pvrun && configs.pvrun.median > 0) entry.actOverPvrun = act.median / configs.pvrun.median;
			// Each configuration against plain QEMU, and the share of the gap to the ceiling it closes.
			const plain = configs.plain?.median;
			const ceiling = configs.ceiling?.median;
			const ratios: NonNullable<Summary['ratios']> = {};
			for (const c of configNames) {
				const v = configs[c]?.median;
				if (c === 'plain' || v === undefined || !plain) continue;
				const closed = c === 'ceiling' ? undefined : gapClosed(v, plain, ceiling, m.better);
				ratios[c] = {vsPlain: v / plain, ...(closed !== undefined ? {gapClosed: closed} : {})};
			}
			if (Object.keys(ratios).length) entry.ratios = ratios;
			out.push(entry);
		}
		// Targets last: some read the scenario's other rows.
		const rows = out.filter((e) => e.scenario === scenario);
		for (const entry of rows) {
			const target = targets.find((t) => t.scenario === scenario && t.workload === entry.workload && t.key === entry.metric);
			if (!target) continue;
			const ceilingRatio = entry.ratios?.ceiling?.vsPlain;
			const above = target.asks !== undefined && ceilingRatio !== undefined && ceilingRatio < target.asks;
			const why = above ? `above the ceiling (${ceilingRatio.toFixed(2)}x plain)` : target.why?.(entry, rows);
			entry.target = {text: target.text, met: target.check(entry, rows) ?? null, ...(why ? {why} : {})};
		}
	}
	return out;
}

function fmt(v: number): string {
	if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
	if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
	if (v >= 100) return v.toFixed(0);
	if (v > 0 && v < 1) return v.toFixed(2);
	return v.toFixed(1);
}

/** A row's name: its label, and its unit where it has one. */
const rowName = (s: Summary) => (s.unit ? `${s.label} (${s.unit})` : s.label);

function cell(s: Stats | undefined): string {
	if (!s) return '—';
	return s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median);
}

const ratioCell = (r: number | undefined) => (r === undefined ? '—' : `${r.toFixed(2)}x`);

/**
 * `ratio` (the summary's, `a`'s median over `b`'s), with the range the repetitions allow when
 * either has more than one: from a's worst over b's best to a's best over b's worst
 * ("1.05x (0.97–1.12)").
 */
function ratioSpreadCell(ratio: number | undefined, a: Stats | undefined, b: Stats | undefined): string {
	if (ratio === undefined || !a || !b || (a.n <= 1 && b.n <= 1) || b.min <= 0) return ratioCell(ratio);
	return `${ratioCell(ratio)} (${(a.min / b.max).toFixed(2)}–${(a.max / b.min).toFixed(2)})`;
}
const shareCell = (r: number | undefined) => (r === undefined ? '—' : `${Math.round(r * 100)} %`);

/**
 * A section of matrix.md: pvrun with `--pv-cs <mode>` (configuration `config`) over pvrun
 * without, for the rows that have the ratio, against the 3 % target; nothing without rows.
 */
function overPvrun(title: string, mode: string, rows: readonly Summary[], config: ConfigName, ratio: (s: Summary) => number | undefined): string[] {
	const measured = rows.filter((s) => ratio(s) !== undefined);
	if (!measured.length) return [];
	return [
		`### ${title}`,
		'',
		`pvrun with \`--pv-cs ${mode}\` over pvrun without, from the same run; the target is at most 3 % worse.`,
		'',
		`| metric | pvrun | pvrun --pv-cs ${mode} | ${mode} / pvrun | within 3 % |`,
		'|---|---|---|---|---|',
		...measured.map((s) => {
			const r = ratio(s) ?? 1;
			const within = s.better === 'higher' ? r >= 0.97 : r <= 1.03;
			return `| ${rowName(s)} | ${cell(s.configs.pvrun)} | ${cell(s.configs[config])} | ${ratioCell(r)} | ${within ? 'yes' : '**no**'} |`;
		}),
		'',
	];
}

/** What a quick run's report and its last line say: its figures are no measurement. */
export const quickWarning =
	'A smoke test, not a measurement: one repetition of half a second per workload, no warm-up, on whatever else the host runs; it shows that every cell ran, and its ratios can be off by any factor. Run pvrun bench without --quick to measure.';

/** The busy share of the host's CPUs before a run from which its figures are not to be trusted. */
export const busyHostShare = 0.25;

/**
 * A warning when the host was busy before the run began (a quarter of its CPU time or more over
 * a second: half a CPU on two): other work then takes CPU time the configurations compete for,
 * by different amounts at different times, so that even same-run ratios may be off.
 */
export function busyHostWarning(e: MatrixResult['environment']): string | undefined {
	const busy = e.busyBefore;
	if (busy === undefined || busy < busyHostShare) return undefined;
	return `The host was busy before the run: ${Math.round(busy * 100)} % of its ${e.cpus} CPUs' time over a second. Other work competes with the guests by different amounts at different times; ratios from this run may be off beyond their ranges.`;
}

/** matrix.md and matrix-<scenario>.svg for a result. */
export async function matrixReport(r: MatrixResult): Promise<Record<string, string>> {
	const files: Record<string, string> = {};
	const e = r.environment;
	const busy = busyHostWarning(e);
	const lines = [
		`# pvrun benchmark matrix${r.options.quick ? ' (quick)' : ''}`,
		'',
		`${r.date.slice(0, 16).replace('T', ' ')} UTC on ${e.host}: ${e.cpus} CPUs (${e.cpuModel}), kernel ${e.kernel}, ${e.qemu}, accelerator ${e.accel}; pvrun ${e.pvrun} (${e.commit || 'no git'})${e.busyBefore !== undefined ? `; before the run, ${Math.round(e.busyBefore * 100)} % of the CPUs' time busy` : ''}${e.loadBefore ? ` (load average ${e.loadBefore.join(', ')})` : ''}.`,
		`${r.options.reps} repetition(s) in rotating order, ${r.options.seconds} s per workload${r.options.quick ? ' without a warm-up, as soon as hints were live' : ' after a warm-up'}; medians with (min–max). ` +
			'Ratios are a configuration over the baseline from the same run; for µs metrics lower is better. ' +
			"pvrun / plain and pvrun / static give, after the ratio of medians, the range the repetitions allow (the worst and the best pairing): a range that includes 1.00x is within this run's noise. " +
			'act: pvrun --pv-cs act; ceiling: the best placement the machine allows (no overcommit, or the oracle static placement); ' +
			'gap closed: the share of the way from plain to the ceiling.',
		'',
		...(r.options.quick ? [`**${quickWarning}**`, ''] : []),
		...(busy ? [`**${busy}**`, ''] : []),
	];
	for (const sc of r.scenarios) {
		const rows = r.summary.filter((s) => s.scenario === sc.id);
		lines.push(
			`## Scenario ${sc.id}: ${sc.title}`,
			'',
			'| metric | plain | static | pvrun | act | ceiling | pvrun / plain | pvrun / static | act / plain | ceiling / plain | gap closed: pvrun, act | target |',
			'|---|---|---|---|---|---|---|---|---|---|---|---|',
		);
		for (const s of rows) {
			const verdict = s.target
				? s.target.met === null
					? (s.target.why ?? 'not measured')
					: `${s.target.met ? 'met' : '**missed**'}${s.target.why ? ` (${s.target.why})` : ''}`
				: '';
			const target = s.target ? `${s.target.text}: ${verdict}` : '';
			const r = s.ratios ?? {};
			lines.push(
				`| ${rowName(s)} | ${cell(s.configs.plain)} | ${cell(s.configs.static)} | ${cell(s.configs.pvrun)} | ${cell(s.configs['pvrun-act'])} | ${cell(s.configs.ceiling)} | ` +
					`${ratioSpreadCell(s.vsPlain, s.configs.pvrun, s.configs.plain)} | ${ratioSpreadCell(s.vsStatic, s.configs.pvrun, s.configs.static)} | ${ratioCell(r['pvrun-act']?.vsPlain)} | ${ratioCell(r.ceiling?.vsPlain)} | ` +
					`${shareCell(r.pvrun?.gapClosed)}, ${shareCell(r['pvrun-act']?.gapClosed)} | ${target} |`,
			);
		}
		lines.push('');
		lines.push(
			...overPvrun(
				`Acting on critical sections, where the workload has none (scenario ${sc.id})`,
				'act',
				rows.filter((s) => s.workload !== 'uspin' && s.workload !== 'klock'),
				'pvrun-act',
				(s) => s.actOverPvrun,
			),
			...overPvrun(`Overhead of observing critical sections (scenario ${sc.id})`, 'observe', rows, 'pvrun-cs', (s) => s.csOverPvrun),
		);
		const svg = await chart(sc.id, sc.title, rows);
		if (svg) files[`matrix-${sc.id}.svg`] = svg;
	}
	if (r.failures.length) {
		lines.push('## Failed boots', '');
		for (const f of r.failures) {
			const last = f.console?.at(-1);
			lines.push(
				`- scenario ${f.scenario}, ${f.config}, rep ${f.rep + 1}: ${f.error}${last ? ` (the console's last line: \`${last.replaceAll('`', "'")}\`)` : ''}`,
			);
		}
		lines.push('');
	}
	files['matrix.md'] = `${lines.join('\n')}\n`;
	return files;
}

/**
 * The chart of a scenario: each metric's median relative to plain QEMU's (plain = 1) per
 * configuration, as a point on a log scale (2x and 0.5x equally far from 1), with a bar from
 * the smallest to the largest repetition and a dashed line at 1.
 */
export function chartSpec(id: ScenarioId, title: string, rows: readonly Summary[]): TopLevelSpec | undefined {
	const configs = ['plain', 'static', 'pvrun', 'pvrun-act', 'ceiling'] as const;
	const values = rows.flatMap((s) => {
		const base = s.configs.plain?.median;
		if (!base) return [];
		return configs.flatMap((c) => {
			const v = s.configs[c];
			return v && v.median > 0 && v.min > 0
				? [{metric: `${s.label} (${s.better === 'higher' ? '↑' : '↓'})`, config: c, relative: v.median / base, low: v.min / base, high: v.max / base}]
				: [];
		});
	});
	if (values.length === 0) return undefined;
	const order: string[] = [...configs];
	const x = {
		type: 'quantitative',
		scale: {type: 'log'},
		title: 'median / plain median, log scale; bars: min–max (↑ higher is better, ↓ lower is better)',
	} as const;
	const y = {field: 'metric', type: 'nominal', title: null, sort: null, axis: {labelLimit: 300}} as const;
	const yOffset = {field: 'config', sort: order};
	const color = {field: 'config', type: 'nominal', sort: order, scale: {range: ['#9e9e9e', '#5b8def', '#e8730c', '#c2185b', '#2e7d32']}} as const;
	return {
		$schema: 'https://vega.github.io/schema/vega-lite/v6.json',
		title: {text: `Scenario ${id}: relative to plain QEMU (= 1)`, subtitle: title},
		width: 420,
		height: {step: 11},
		layer: [
			{data: {values}, mark: 'rule', encoding: {y, yOffset, color, x: {...x, field: 'low'}, x2: {field: 'high'}}},
			{data: {values}, mark: {type: 'point', filled: true, size: 30}, encoding: {y, yOffset, color, x: {...x, field: 'relative'}}},
			{data: {values: [{one: 1}]}, mark: {type: 'rule', strokeDash: [4, 3], color: '#333'}, encoding: {x: {...x, field: 'one'}}},
		],
		config: {font: 'sans-serif'},
	};
}

/** The chart as SVG (chartSpec). */
async function chart(id: ScenarioId, title: string, rows: Summary[]): Promise<string | undefined> {
	const spec = chartSpec(id, title, rows);
	if (!spec) return undefined;
	const view = new vega.View(vega.parse(compile(spec).spec), {renderer: 'none'});
	try {
		return await view.toSVG();
	} finally {
		view.finalize();
	}
}
