// The reader's counters (src/shm/counters.ts): every counter the docs list
// (docs/shm-layout.md, "Host validation") starts at zero, in a fresh object.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {emptyCounters, saturatingAdd} from '../../src/shm/counters.js';
import {packageRoot} from '../../src/util/paths.js';

/** The counter names of the table in docs/shm-layout.md ("| counter | triggered by |"). */
function documentedCounters(): string[] {
	const doc = fs.readFileSync(path.join(packageRoot, 'docs', 'shm-layout.md'), 'utf8');
	const table = doc.slice(doc.indexOf('| counter | triggered by |')).split('\n\n', 1)[0] ?? '';
	return [...table.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1] ?? '');
}

t.test('every documented counter, and no other, at zero', async (t) => {
	const documented = documentedCounters();
	t.ok(documented.length >= 10, `the table was found (${documented.length} rows)`);
	t.strictSame(emptyCounters(), Object.fromEntries(documented.map((name) => [name, 0])));
});

t.test('a fresh object each call', async (t) => {
	const a = emptyCounters();
	a.badSeq += 3;
	t.not(emptyCounters(), a);
	t.equal(emptyCounters().badSeq, 0, 'what one reader counted is not in the next');
});

t.test('saturatingAdd stops at 2^53 - 1', async (t) => {
	t.equal(saturatingAdd(2, 3), 5);
	t.equal(saturatingAdd(Number.MAX_SAFE_INTEGER - 1, 5), Number.MAX_SAFE_INTEGER);
	t.equal(saturatingAdd(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
});
