// What a matrix file's run tells a CI job: a Markdown summary (fit for a job's
// summary page: GitHub's $GITHUB_STEP_SUMMARY, GitLab's report), and JUnit XML
// (one test case per gate check, or per workload and configuration without a
// baseline), so that a regression shows as a failed test where CI shows tests.
import junitModule, {type Builder} from 'junit-report-builder';
import {failsGate} from './gate.js';
import type {GateCheck, RunResult, RunSummaryRow} from './run-result.js';

// The package is CommonJS: under Node's ESM its default import is the builder itself, whatever its types say.
const junit = junitModule as unknown as Builder;

/** A number in a table: 3 significant digits, thousands as k and M. */
export function num(x: number): string {
	const a = Math.abs(x);
	if (a >= 1e6) return `${(x / 1e6).toPrecision(3)}M`;
	if (a >= 1e4) return `${(x / 1e3).toPrecision(3)}k`;
	if (a === 0) return '0';
	return a >= 100 ? String(Math.round(x)) : x.toPrecision(3);
}

const pct = (x: number) => `${Math.round(x * 100)} %`;
const signed = (change: number) => `${change >= 1 ? '+' : '−'}${Math.abs(Math.round((change - 1) * 100))} %`;

function verdictText(c: GateCheck): string {
	const change = c.change !== undefined ? ` ${signed(c.change)}` : '';
	const p = c.pValue !== undefined ? ` (p ${c.pValue < 0.001 ? '< 0.001' : c.pValue.toFixed(3)})` : '';
	const what = `${c.config}${c.kind === 'ratio' ? ' ratio' : ''}`;
	switch (c.verdict) {
		case 'regression':
			return `❌ ${what}${change}${p}`;
		case 'missing':
			return `❌ ${what}: ${c.why ?? 'no result'}`;
		case 'improvement':
			return `⬆️ ${what}${change}${p}`;
		case 'pass':
			return `✅ ${what}${change}`;
		case 'untested':
			return `— ${what}: ${c.why ?? 'untested'}`;
	}
}

/** The Markdown summary of a run (and its gate, if it had a baseline). */
export function runMarkdown(r: RunResult): string {
	const out: string[] = [];
	const g = r.gate;
	const status = g ? (g.passed ? '✅ gate passed' : `❌ gate failed: ${g.regressions} regression${g.regressions === 1 ? '' : 's'}`) : 'no baseline given';
	out.push(`## pvrun bench: ${r.matrix.title ?? r.matrix.name} — ${status}`, '');
	const e = r.environment;
	const during = e.during
		? `; other processes during the run: ${pct(e.during.othersMedian)} of the CPU time (median)${e.during.stealMedian ? `, the hypervisor's steal ${pct(e.during.stealMedian)}` : ''}`
		: '';
	out.push(
		`${e.cpuModel}, ${e.cpus} CPUs, Linux ${e.kernel}, ${e.accel.toUpperCase()}; ${e.qemu}; pvrun ${e.pvrun}${e.commit ? ` (${e.commit})` : ''}. ` +
			`${r.options.reps} repetition${r.options.reps === 1 ? '' : 's'}, ${r.samples.length} results in ${Math.round(r.durationSeconds)} s; load before ${e.loadBefore[0]}${during}.`,
		'',
	);
	if (g) {
		out.push(
			`Compared with ${g.baseline.file} (${g.baseline.date.slice(0, 16).replace('T', ' ')}${g.baseline.commit ? `, ${g.baseline.commit}` : ''}): a cell fails when a one-sided Welch t-test says it is worse by more than ${pct(g.threshold)} at p < ${g.alpha}` +
				`${g.checks.some((c) => c.adjusted) ? '; absolute values per unit of host speed (timed before each boot)' : ''}` +
				`${g.mode === 'ratios' ? '; only the same-run ratios gate' : ''}.`,
			'',
		);
		for (const w of g.warnings) out.push(`> ⚠️ ${w}`, '');
	}
	if (!r.complete) out.push(`> ⚠️ incomplete: ${r.skipped.length} boot(s) skipped (${r.skipped[0]?.reason ?? ''})`, '');
	const base = r.options.baselineConfig;
	for (const s of r.scenarios) {
		const rows = r.summary.filter((x) => x.scenario === s.name);
		const load = [
			`${s.vcpus} vCPUs on ${s.hostCpus.length} host CPU${s.hostCpus.length === 1 ? '' : 's'}`,
			...(s.neighbourVms ? [`${s.neighbourVms} busy VM${s.neighbourVms === 1 ? '' : 's'} of ${s.neighbourVcpus} vCPUs beside`] : []),
			...(s.hostHogs ? [`${s.hostHogs} busy host process${s.hostHogs === 1 ? '' : 'es'}`] : []),
			`${s.overcommit}x overcommitted`,
		].join(', ');
		out.push(`### ${s.name}${s.title ? `: ${s.title}` : ''}`, '', `${load}.`, '');
		if (!rows.length) {
			out.push('No results.', '');
			continue;
		}
		const configs = r.options.configs.filter((c) => rows.some((x) => x.configs[c]));
		const others = configs.filter((c) => c !== base);
		out.push(
			`| ${['metric', ...configs, ...others.map((c) => `${c} / ${base}`), ...(g ? ['vs baseline'] : [])].join(' | ')} |`,
			`|${'---|'.repeat(1 + configs.length + others.length + (g ? 1 : 0))}`,
		);
		for (const row of rows) out.push(tableRow(row, configs, others, g?.checks ?? [], !!g));
		out.push('');
	}
	if (r.failures.length) {
		out.push('### Failures', '');
		for (const f of r.failures)
			out.push(
				`- ${f.scenario}, ${f.config}, repetition ${f.rep + 1}${f.workload ? `, ${f.workload}` : ''}: ${f.error}${f.retried ? ' (started again: it then ran)' : ''}`,
			);
		out.push('');
	}
	return `${out.join('\n')}\n`;
}

function tableRow(row: RunSummaryRow, configs: readonly string[], others: readonly string[], checks: readonly GateCheck[], gated: boolean): string {
	const arrow = row.better === 'higher' ? '↑' : '↓';
	const label = `${row.label}${row.unit ? ` (${row.unit})` : ''} ${arrow}`;
	const cells = configs.map((c) => {
		const s = row.configs[c];
		return s ? `${num(s.median)}${s.n > 1 ? ` ±${Math.round(s.cv * 100)}%` : ''}` : '—';
	});
	const ratios = others.map((c) => {
		const s = row.ratios[c];
		return s ? `${s.median.toFixed(2)}x` : '—';
	});
	const mine = checks.filter((c) => c.scenario === row.scenario && c.workload === row.workload && c.metric === row.metric);
	const bad = mine.filter(failsGate);
	const good = mine.filter((c) => c.verdict === 'improvement');
	const shown = bad.length ? bad : good.length ? good : mine.filter((c) => c.verdict === 'pass').length ? [] : mine.slice(0, 1);
	const vs = !gated ? [] : [shown.length ? shown.map(verdictText).join('<br>') : mine.length ? '✅ within noise' : '—'];
	return `| ${[label, ...cells, ...ratios, ...vs].join(' | ')} |`;
}

/** JUnit XML: per scenario a suite; a case per gate check, or (no baseline) per workload and configuration that ran or failed. */
export function runJunit(r: RunResult): string {
	const builder = junit.newBuilder().name(`pvrun bench ${r.matrix.name}`);
	for (const s of r.scenarios) {
		const suite = builder.testSuite().name(`${r.matrix.name}.${s.name}`);
		if (r.gate) {
			for (const c of r.gate.checks.filter((x) => x.scenario === s.name)) {
				const tc = suite
					.testCase()
					.className(`${r.matrix.name}.${s.name}.${c.workload}`)
					.name(`${c.metric} [${c.config}${c.kind === 'ratio' ? ` / ${r.options.baselineConfig}` : ''}]`);
				if (failsGate(c)) tc.failure(verdictText(c).replace(/^❌ /, ''), c.verdict);
				else if (c.verdict === 'untested') tc.skipped();
			}
		}
		for (const w of r.options.workloads)
			for (const config of r.options.configs) {
				const failures = r.failures.filter((f) => f.scenario === s.name && f.config === config && !f.retried && (!f.workload || f.workload === w));
				const ran = r.samples.some((x) => x.scenario === s.name && x.workload === w && x.config === config);
				if (!failures.length && (!ran || r.gate)) continue;
				const tc = suite.testCase().className(`${r.matrix.name}.${s.name}.${w}`).name(`runs under ${config}`);
				const first = failures[0];
				if (first) tc.failure(`repetition ${first.rep + 1}: ${first.error}`, 'failure').standardOutput((first.output ?? []).join('\n'));
			}
		for (const k of r.skipped.filter((x) => x.scenario === s.name))
			suite
				.testCase()
				.className(`${r.matrix.name}.${s.name}`)
				.name(`${k.config}, repetition ${k.rep + 1}`)
				.skipped()
				.standardOutput(k.reason);
	}
	return builder.build();
}
