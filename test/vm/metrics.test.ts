import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {MetricsFile, formatMetrics, type VmMetrics} from '../../src/vm/metrics.js';

const sample: VmMetrics = {
	id: 'pvrun-10-ab',
	name: 'we"b\\1\nx',
	qemuPid: 11,
	vcpus: 2,
	placement: [
		{vcpu: 1, cpus: [0], exclusive: false},
		{vcpu: 0, cpus: [1], exclusive: true},
	],
	activity: {records: 120, pins: 4, floats: 3, denies: 1, recent: []},
	leases: [{cpu: 1, vcpu: 0}],
	waiting: false,
	decisions: {fast: 3, slow: 1},
	hintsActive: true,
};

// The text exposition format, line by line: comments, or a metric name, labels and a number.
const sampleLine = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\} -?\d+(?:\.\d+)?$/;

t.test('formatMetrics: Prometheus text format, every family typed, label values escaped', async (t) => {
	const text = formatMetrics(sample);
	t.ok(text.endsWith('\n'));
	const lines = text.trimEnd().split('\n');
	const bad = lines.filter((l) => !l.startsWith('# HELP ') && !l.startsWith('# TYPE ') && !sampleLine.test(l));
	t.same(bad, [], 'every line is a comment or a sample');
	const families = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
	t.equal(new Set(families).size, families.length, 'each family once');
	t.ok(
		lines.filter((l) => !l.startsWith('#')).every((l) => families.includes(l.slice(0, l.indexOf('{')))),
		'each sample in a typed family',
	);
	t.ok(lines.includes('pvrun_vm_info{vm="pvrun-10-ab",name="we\\"b\\\\1\\nx",qemu_pid="11"} 1'), 'the name escaped');
	for (const line of [
		'pvrun_hint_records_total{vm="pvrun-10-ab"} 120',
		'pvrun_hint_decisions_total{vm="pvrun-10-ab",kind="deny"} 1',
		'pvrun_host_decisions_total{vm="pvrun-10-ab",path="fast"} 3',
		'pvrun_vcpu_exclusive{vm="pvrun-10-ab",vcpu="0"} 1',
		'pvrun_vcpu_exclusive{vm="pvrun-10-ab",vcpu="1"} 0',
		'pvrun_lease{vm="pvrun-10-ab",cpu="1",vcpu="0"} 1',
		'pvrun_lease_waiting{vm="pvrun-10-ab"} 0',
		'pvrun_hints_active{vm="pvrun-10-ab"} 1',
	])
		t.ok(lines.includes(line), line);
	t.ok(
		lines.indexOf('pvrun_vcpu_exclusive{vm="pvrun-10-ab",vcpu="0"} 1') < lines.indexOf('pvrun_vcpu_exclusive{vm="pvrun-10-ab",vcpu="1"} 0'),
		'vCPUs in order',
	);
});

t.test('MetricsFile: replaced whole, removed at the end; a failure said once', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-metrics-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const warnings: string[] = [];
	const file = new MetricsFile(path.join(dir, 'vm.prom'), (w) => warnings.push(w));
	file.write(sample);
	t.equal(fs.readFileSync(path.join(dir, 'vm.prom'), 'utf8'), formatMetrics(sample));
	file.write({...sample, waiting: true});
	t.match(fs.readFileSync(path.join(dir, 'vm.prom'), 'utf8'), /pvrun_lease_waiting\{vm="pvrun-10-ab"\} 1/);
	t.same(fs.readdirSync(dir), ['vm.prom'], 'no temporary file left');
	file.remove();
	t.same(fs.readdirSync(dir), []);
	const nowhere = new MetricsFile(path.join(dir, 'missing', 'vm.prom'), (w) => warnings.push(w));
	nowhere.write(sample);
	nowhere.write(sample);
	t.same(warnings, [`cannot write --pv-metrics ${path.join(dir, 'missing', 'vm.prom')}: ENOENT`], 'one warning');
});
