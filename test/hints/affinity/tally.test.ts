// The hint path's tally: a summary only when lines were left out, at most once per interval,
// with exact counts, and a terminal line in the words users read.
import t from 'tap';
import {HintTally, summaryLine} from '../../../src/hints/affinity/tally.js';

t.test('a summary once a second while lines are left out, with the counts since the last', async (t) => {
	let now = 0;
	const tally = new HintTally(() => now);
	tally.records = 2950;
	tally.refused = 12;
	tally.changes = 40;
	tally.leftOut = 2900;
	now = 999;
	t.equal(tally.take(), undefined, 'not before a second');
	now = 1000;
	t.same(tally.take(), {seconds: 1, records: 2950, refused: 12, changes: 40, leftOut: 2900});
	tally.records = 3;
	now = 2000;
	t.equal(tally.take(), undefined, 'nothing left out: no summary');
	now = 2500;
	tally.records = 7;
	tally.leftOut = 1;
	now = 3500;
	t.same(tally.take(), {seconds: 1.5, records: 7, refused: 0, changes: 0, leftOut: 1}, 'the quiet second was not carried over');
});

t.test("the terminal line: 'N hint records in the last second, M refused'", async (t) => {
	t.equal(
		summaryLine({seconds: 1, records: 2950, refused: 12, changes: 40, leftOut: 2900}),
		'2950 hint records in the last second, 12 refused, 40 changes of placement (2900 log lines left out)',
	);
	t.match(summaryLine({seconds: 1.25, records: 1, refused: 0, changes: 0, leftOut: 1}), /^1 hint record in the last 1.25 s, 0 refused/);
});
