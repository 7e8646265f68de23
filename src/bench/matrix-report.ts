// The benchmark matrix's numbers: per scenario, workload and metric, the
// median and spread of each configuration, pvrun's ratio to plain QEMU and to
// static pinning from the same run, and the targets, met or missed.
// Rendered as a Markdown table and one SVG chart per scenario (vega-lite).
import * as vega from 'vega';
import {compile, type TopLevelSpec} from 'vega-lite';
import {spread} from '../util/stats.js';
import type {MatrixResult, Sample, Stats, Summary} from './matrix-result.js';
import {configNames, type ScenarioId, type WorkloadName} from './options.js';

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
];

/** The targets (scenario a, this 2-CPU machine under TCG), on pvrun's ratios. */
export interface Target {
	scenario: ScenarioId;
	workload: WorkloadName;
	key: string;
	text: string;
	check(vsPlain: number | undefined, vsStatic: number | undefined): boolean | undefined;
}

const both = (a: boolean | undefined, b: boolean | undefined) => (a === undefined || b === undefined ? undefined : a && b);
export const targets: Target[] = [
	{
		scenario: 'a',
		workload: 'poll',
		key: 'iterPerSec',
		text: '≥ 3x plain and ≥ 1.5x static',
		check: (p, s) => both(p === undefined ? undefined : p >= 3, s === undefined ? undefined : s >= 1.5),
	},
	{scenario: 'a', workload: 'poll', key: 'maxStallUs', text: '≤ 0.5x plain', check: (p) => (p === undefined ? undefined : p <= 0.5)},
	{scenario: 'a', workload: 'poll', key: 'vmWorkPerSec', text: '≥ 1x plain', check: (p) => (p === undefined ? undefined : p >= 1)},
	{
		scenario: 'a',
		workload: 'pingpong',
		key: 'roundTripsPerSec',
		text: '≥ 2x plain and ≥ 1.3x static',
		check: (p, s) => both(p === undefined ? undefined : p >= 2, s === undefined ? undefined : s >= 1.3),
	},
	{scenario: 'a', workload: 'sleeper', key: 'p99Us', text: '≤ 1.1x plain', check: (p) => (p === undefined ? undefined : p <= 1.1)},
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
			const target = targets.find((t) => t.scenario === scenario && t.workload === m.workload && t.key === m.key);
			if (target) entry.target = {text: target.text, met: target.check(vsPlain, vsStatic) ?? null};
			out.push(entry);
		}
	}
	return out;
}

function fmt(v: number): string {
	if (v >= 10_000) return `${(v / 1000).toFixed(0)}k`;
	if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
	if (v >= 100) return v.toFixed(0);
	return v.toFixed(1);
}

function cell(s: Stats | undefined): string {
	if (!s) return '—';
	return s.n > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median);
}

const ratioCell = (r: number | undefined) => (r === undefined ? '—' : `${r.toFixed(2)}x`);

/** matrix.md and matrix-<scenario>.svg for a result. */
export async function matrixReport(r: MatrixResult): Promise<Record<string, string>> {
	const files: Record<string, string> = {};
	const e = r.environment;
	const lines = [
		`# pvrun benchmark matrix${r.options.quick ? ' (quick)' : ''}`,
		'',
		`${r.date.slice(0, 16).replace('T', ' ')} UTC on ${e.host}: ${e.cpus} CPUs (${e.cpuModel}), kernel ${e.kernel}, ${e.qemu}, accelerator ${e.accel}; pvrun ${e.pvrun} (${e.commit || 'no git'}).`,
		`${r.options.reps} repetition(s) in rotating order, ${r.options.seconds} s per workload after a warm-up; medians with (min–max). ` +
			'Ratios are pvrun over the baseline from the same run; for µs metrics lower is better.',
		'',
	];
	for (const sc of r.scenarios) {
		const rows = r.summary.filter((s) => s.scenario === sc.id);
		lines.push(
			`## Scenario ${sc.id}: ${sc.title}`,
			'',
			'| metric | plain | static | pvrun | pvrun / plain | pvrun / static | target |',
			'|---|---|---|---|---|---|---|',
		);
		for (const s of rows) {
			const target = s.target ? `${s.target.text}: ${s.target.met === null ? 'not measured' : s.target.met ? 'met' : '**missed**'}` : '';
			lines.push(
				`| ${s.label} (${s.unit}) | ${cell(s.configs.plain)} | ${cell(s.configs.static)} | ${cell(s.configs.pvrun)} | ${ratioCell(s.vsPlain)} | ${ratioCell(s.vsStatic)} | ${target} |`,
			);
		}
		lines.push('');
		const overhead = rows.filter((s) => s.csOverPvrun !== undefined);
		if (overhead.length) {
			lines.push(
				`### Overhead of observing critical sections (scenario ${sc.id})`,
				'',
				'pvrun with `--pv-cs observe` over pvrun without, from the same run; the target is at most 3 % worse.',
				'',
				'| metric | pvrun | pvrun --pv-cs observe | observe / pvrun | within 3 % |',
				'|---|---|---|---|---|',
			);
			for (const s of overhead) {
				const r = s.csOverPvrun ?? 1;
				const within = s.better === 'higher' ? r >= 0.97 : r <= 1.03;
				lines.push(`| ${s.label} (${s.unit}) | ${cell(s.configs.pvrun)} | ${cell(s.configs['pvrun-cs'])} | ${ratioCell(r)} | ${within ? 'yes' : '**no**'} |`);
			}
			lines.push('');
		}
		const svg = await chart(sc.id, sc.title, rows);
		if (svg) files[`matrix-${sc.id}.svg`] = svg;
	}
	if (r.failures.length) {
		lines.push('## Failed boots', '');
		for (const f of r.failures) lines.push(`- scenario ${f.scenario}, ${f.config}, rep ${f.rep + 1}: ${f.error}`);
		lines.push('');
	}
	files['matrix.md'] = `${lines.join('\n')}\n`;
	return files;
}

/** Each metric's medians relative to plain QEMU's (plain = 1), grouped by configuration. */
async function chart(id: ScenarioId, title: string, rows: Summary[]): Promise<string | undefined> {
	const values = rows.flatMap((s) => {
		const base = s.configs.plain?.median;
		if (!base) return [];
		return (['plain', 'static', 'pvrun'] as const).flatMap((c) => {
			const v = s.configs[c];
			return v ? [{metric: `${s.label} (${s.better === 'higher' ? '↑' : '↓'})`, config: c, relative: v.median / base}] : [];
		});
	});
	if (values.length === 0) return undefined;
	const spec: TopLevelSpec = {
		$schema: 'https://vega.github.io/schema/vega-lite/v6.json',
		title: {text: `Scenario ${id}: relative to plain QEMU (= 1)`, subtitle: title},
		data: {values},
		mark: 'bar',
		width: 420,
		height: {step: 11},
		encoding: {
			y: {field: 'metric', type: 'nominal', title: null, sort: null},
			yOffset: {field: 'config', sort: ['plain', 'static', 'pvrun']},
			x: {field: 'relative', type: 'quantitative', title: 'median / plain median (↑ higher is better, ↓ lower is better)'},
			color: {field: 'config', type: 'nominal', sort: ['plain', 'static', 'pvrun'], scale: {range: ['#9e9e9e', '#5b8def', '#e8730c']}},
		},
		config: {font: 'sans-serif'},
	};
	const view = new vega.View(vega.parse(compile(spec).spec), {renderer: 'none'});
	try {
		return await view.toSVG();
	} finally {
		view.finalize();
	}
}
