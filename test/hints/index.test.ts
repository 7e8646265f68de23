// The list of hint types: each has its own record type and feature bit, and
// its BPF program is built.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {byRecordType, hintFeatures, hintTypes, hostFeatures} from '../../src/hints/index.js';
import {Feature, RecordType} from '../../src/shm/layout.js';
import {packageRoot} from '../../src/util/paths.js';

t.test('every hint type: its record type, its feature bit, its program', async (t) => {
	t.same(
		hintTypes.map((h) => h.name),
		['affinity'],
	);
	t.equal(new Set(hintTypes.map((h) => h.recordType)).size, hintTypes.length, 'record types differ');
	t.equal(byRecordType.get(RecordType.affinity)?.name, 'affinity', 'found by record type');
	t.equal(hintFeatures, Feature.affinity, 'the header says which types the host acts on');
	for (const h of hintTypes) t.ok(fs.existsSync(path.join(packageRoot, 'bpf', h.program)), `bpf/${h.program} is built`);
});

t.test('the header features: the hint types, and critical sections unless --pv-cs off', async (t) => {
	t.equal(hostFeatures('off'), Feature.affinity);
	t.equal(hostFeatures('observe'), Feature.affinity | Feature.cs);
});
