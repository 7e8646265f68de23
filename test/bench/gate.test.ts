// The regression gate (src/bench/gate.ts) on made-up runs: the test's
// p-values in both directions, what counts as a regression, a cell whose
// workload failed, too few repetitions, the ratios-only gate, the noise and
// host warnings, and the baseline file's checks.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {cellValues, gate, loadRunResult, worsePValue, defaultGate} from '../../src/bench/gate.js';
import type {RunResult} from '../../src/bench/run-result.js';
import {fakeRun} from '../helpers/bench-run.js';

t.test('worsePValue: a one-sided Welch test of "worse by more than the threshold"', async (t) => {
	const base = [100, 102, 98, 101, 99];
	t.ok(worsePValue(base, [50, 52, 49, 51, 50], 'higher', 0.05) < 0.001, 'half the throughput: a regression');
	t.ok(worsePValue(base, [101, 99, 100, 98, 102], 'higher', 0.05) > 0.5, 'the same: not one');
	t.ok(worsePValue(base, [96, 97, 95, 96, 97], 'higher', 0.05) > 0.05, '4 % worse is within a 5 % threshold');
	t.ok(worsePValue(base, [96, 97, 95, 96, 97], 'higher', 0.01) < 0.05, 'but beyond a 1 % one');
	t.ok(worsePValue(base, [200, 210, 190, 205, 195], 'higher', 0.05) > 0.99, 'twice as fast is no regression');
	t.ok(worsePValue(base, [200, 210, 190, 205, 195], 'lower', 0.05) < 0.001, 'but twice as slow where lower is better is');
	t.equal(worsePValue([5, 5], [5, 5], 'higher', 0.05), 1, 'identical repetitions, no change');
	t.equal(worsePValue([5, 5], [4, 4], 'higher', 0.05), 0, 'identical repetitions, 20 % worse');
	t.ok(worsePValue([0, 1, 0], [30, 31, 29], 'lower', 0.05) < 0.01, 'values of 0: compared as values, not logarithms');
	t.ok(worsePValue(base, [60, 140, 100, 55, 150], 'higher', 0.05) > 0.05, 'a noisy run is no evidence');
});

const run = fakeRun;

const verdicts = (r: ReturnType<typeof gate>) => Object.fromEntries(r.checks.map((c) => [`${c.config}/${c.kind}`, c.verdict]));

t.test('gate: absolute cells and same-run ratios, each with its verdict', async (t) => {
	const baseline = run({plain: [100, 101, 99], pvrun: [200, 204, 198]});
	const same = gate(run({plain: [99, 100, 102], pvrun: [201, 199, 202]}), baseline, 'b.json', defaultGate);
	t.same(verdicts(same), {'plain/absolute': 'pass', 'pvrun/absolute': 'pass', 'pvrun/ratio': 'pass'});
	t.ok(same.passed, 'passed');
	t.same(same.warnings, [], 'quiet, same host: no warnings');

	const slower = gate(run({plain: [50, 51, 49], pvrun: [100, 102, 99]}), baseline, 'b.json', defaultGate);
	t.same(
		verdicts(slower),
		{'plain/absolute': 'regression', 'pvrun/absolute': 'regression', 'pvrun/ratio': 'pass'},
		'a slower workload: its values, not its ratio',
	);
	t.equal(slower.regressions, 2);
	t.notOk(slower.passed);
	t.equal(slower.checks.find((c) => c.config === 'plain')?.change, 0.5, 'change: median over median');

	const lostHelp = gate(run({plain: [100, 101, 99], pvrun: [101, 100, 102]}), baseline, 'b.json', defaultGate);
	t.same(verdicts(lostHelp), {'plain/absolute': 'pass', 'pvrun/absolute': 'regression', 'pvrun/ratio': 'regression'}, "pvrun's help lost: the ratio too");
	const ratiosOnly = gate(run({plain: [50, 51, 49], pvrun: [100, 102, 99]}), baseline, 'b.json', {...defaultGate, mode: 'ratios'});
	t.ok(ratiosOnly.passed, 'the ratios gate: a host (or workload) slower as a whole passes');
	t.equal(ratiosOnly.checks.filter((c) => c.verdict === 'regression' && !c.gating).length, 2, 'its absolute regressions are shown, not counted');

	const faster = gate(run({plain: [150, 151, 149], pvrun: [300, 301, 299]}), baseline, 'b.json', defaultGate);
	t.same(verdicts(faster), {'plain/absolute': 'improvement', 'pvrun/absolute': 'improvement', 'pvrun/ratio': 'pass'});
});

t.test('gate: a failed workload is missing (it fails), one repetition cannot be tested, unknown cells are skipped', async (t) => {
	const baseline = run({plain: [100, 101, 99], pvrun: [200, 204, 198]});
	const failed = run({plain: [100, 101, 99]}, {failures: [{scenario: 's', config: 'pvrun', rep: 0, workload: 'w', error: 'timed out after 60 s'}]});
	failed.options.configs = ['plain', 'pvrun'];
	const g = gate(failed, baseline, 'b.json', defaultGate);
	t.same(verdicts(g), {'plain/absolute': 'pass', 'pvrun/absolute': 'missing', 'pvrun/ratio': 'missing'});
	t.equal(g.checks.find((c) => c.verdict === 'missing')?.why, 'no result: timed out after 60 s');
	t.notOk(g.passed, 'a workload that stopped working fails the gate');

	const filtered = run({plain: [100, 101, 99]});
	const f = gate(filtered, baseline, 'b.json', defaultGate);
	t.ok(f.passed, 'a configuration left out of this run is not a regression');
	t.equal(f.checks.find((c) => c.config === 'pvrun')?.why, 'not in this run');

	const once = gate(run({plain: [100], pvrun: [100]}), run({plain: [100], pvrun: [200]}), 'b.json', defaultGate);
	t.same(verdicts(once), {'plain/absolute': 'untested', 'pvrun/absolute': 'untested', 'pvrun/ratio': 'untested'});
	t.ok(once.passed);
	t.match(once.warnings, ['nothing could be tested: the gate needs 2 repetitions on each side (3 or more recommended)']);
	t.equal(once.checks[1]?.change, 0.5, 'the change is still shown');
});

t.test('warnings: noisy repetitions, a busy host, another host', async (t) => {
	const baseline = run({plain: [100, 140, 70]});
	const noisy = gate(run({plain: [100, 101, 99]}, {}), baseline, 'b.json', defaultGate);
	t.match(noisy.warnings, [
		/^too noisy for the gate to mean much in 1 of 1 cells: repetitions vary by up to 34 % \(coefficient of variation\), more than the 5 % /,
	]);
	const busy = run({plain: [100, 101, 99]});
	busy.environment.during = {samples: 10, othersMedian: 0.4, othersMax: 0.9, stealMedian: 0.3, loadMax: 3};
	busy.environment.busyBefore = 0.5;
	busy.environment.cpuModel = 'other cpu';
	const w = gate(busy, run({plain: [100, 101, 99]}), 'b.json', defaultGate).warnings;
	t.match(w, [
		"other processes used 40 % of the host's CPU time during this run (median; at most 90 %)",
		"the hypervisor took 30 % of the host's CPU time during this run (steal, median)",
		'the host was 50 % busy before this run started',
		'the baseline ran on another host (cpuModel: cpu then, other cpu now): only the ratio cells compare like with like',
	]);
});

t.test('cellValues: ratios pair repetitions of one scenario and workload', async (t) => {
	const cells = cellValues(run({plain: [100, 50], pvrun: [200, 150]}).samples, 'plain');
	t.same([...cells.values()].find((c) => c.cell.kind === 'ratio')?.values, [2, 3]);
});

t.test('a baseline (or a result to compare) that is not a result is one clear line', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-gate-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const file = path.join(dir, 'old.json');
	fs.writeFileSync(file, JSON.stringify({schema: 'pvrun-bench-matrix/1', samples: []}));
	t.throws(() => loadRunResult(file), {name: 'UsageError', message: `baseline ${file} is not a result of pvrun bench --matrix (schema pvrun-bench-run/1)`});
	t.throws(() => loadRunResult(path.join(dir, 'none.json')), {name: 'UsageError', message: `cannot read baseline ${path.join(dir, 'none.json')}: ENOENT`});
	t.throws(
		() => loadRunResult(file, 'result'),
		{message: `result ${file} is not a result of pvrun bench --matrix (schema pvrun-bench-run/1)`},
		'--compare names the file it compares as such',
	);
	fs.writeFileSync(file, JSON.stringify(run({plain: [1]})));
	t.equal(loadRunResult(file).samples.length, 1);
});

t.test('host speed: a slower host cancels out of the absolute cells; a slower workload does not', async (t) => {
	const withSpeed = (r: RunResult, speed: number) => {
		for (const s of r.samples) s.hostSpeed = speed;
		r.environment.hostSpeed = {n: r.samples.length, median: speed, min: speed, max: speed};
		return r;
	};
	const baseline = withSpeed(run({plain: [100, 101, 99], pvrun: [200, 204, 198]}), 500);
	const slowHost = gate(withSpeed(run({plain: [80, 81, 79], pvrun: [160, 163, 158]}), 400), baseline, 'b.json', defaultGate);
	t.same(
		verdicts(slowHost),
		{'plain/absolute': 'pass', 'pvrun/absolute': 'pass', 'pvrun/ratio': 'pass'},
		'the host 20 % slower, the workload 20 % slower: no regression',
	);
	t.equal(slowHost.checks[0]?.adjusted, true);
	t.equal(slowHost.checks[0]?.change, 1, 'the change per unit of host speed');
	t.match(slowHost.warnings, [
		'the host ran 20 % slower than during the baseline (a CPU loop timed before each boot): absolute cells are compared per unit of host speed',
	]);
	const slowWork = gate(withSpeed(run({plain: [80, 81, 79], pvrun: [160, 163, 158]}), 500), baseline, 'b.json', defaultGate);
	t.same(
		verdicts(slowWork),
		{'plain/absolute': 'regression', 'pvrun/absolute': 'regression', 'pvrun/ratio': 'pass'},
		'the same host, the workload 20 % slower',
	);
	t.same(slowWork.warnings, []);
	const unmeasured = gate(run({plain: [80, 81, 79], pvrun: [160, 163, 158]}), baseline, 'b.json', defaultGate);
	t.equal(unmeasured.checks[0]?.adjusted, undefined, 'a run without host speeds: the values as they are');
	t.equal(unmeasured.checks[0]?.verdict, 'regression');
});

t.test('host speed: times (lower is better) are adjusted the other way', async (t) => {
	const cells = cellValues([{scenario: 's', config: 'plain', rep: 0, order: 0, workload: 'w', values: {rate: 80, took: 1.25}, hostSpeed: 400}], 'plain', {
		ref: 500,
		better: (_s, _w, m) => (m === 'rate' ? 'higher' : 'lower'),
	});
	t.same(
		[...cells.values()].map((c) => [c.cell.metric, c.values[0]]),
		[
			['rate', 100],
			['took', 1],
		],
	);
});
