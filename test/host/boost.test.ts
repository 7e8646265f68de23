// The real-time section around a hint decision: entered only within its
// budget, always left, and turned off once (with one reason) when the kernel
// refuses it.
import t from 'tap';
import {SectionBoost, type BoostSwitch} from '../../src/host/boost.js';

// A switch that records calls and fails as told.
function fakeSwitch(enterResult: 0 | string = 0, leaveResult: 0 | string = 0) {
	const calls: string[] = [];
	const sw: BoostSwitch = {
		enter: () => (calls.push('enter'), enterResult),
		leave: () => (calls.push('leave'), leaveResult),
	};
	return {sw, calls};
}

t.test('a section is entered and left once each', async (t) => {
	const {sw, calls} = fakeSwitch();
	let now = 0;
	const boost = new SectionBoost(sw, () => t.fail('not disabled'), {windowMs: 100, maxMs: 10}, () => now);
	t.equal(boost.enter(), true);
	t.equal(boost.enter(), false, 'no nesting');
	now = 1;
	boost.leave();
	boost.leave();
	t.same(calls, ['enter', 'leave']);
});

t.test('the budget caps boosted time per window', async (t) => {
	const {sw, calls} = fakeSwitch();
	let now = 0;
	const boost = new SectionBoost(sw, () => t.fail('not disabled'), {windowMs: 100, maxMs: 10}, () => now);
	// Three sections of 4 ms: the third starts with 8 ms used (< 10), the fourth with 12 ms.
	for (let i = 0; i < 3; i++) {
		t.equal(boost.enter(), true, `section ${i} boosted`);
		now += 4;
		boost.leave();
	}
	t.equal(boost.enter(), false, 'budget used up');
	t.equal(boost.overBudget, 1);
	now = 100;
	t.equal(boost.enter(), true, 'a new window has a new budget');
	boost.leave();
	t.equal(calls.filter((c) => c === 'enter').length, 4);
	t.equal(calls.filter((c) => c === 'leave').length, 4);
});

t.test('a refused switch turns boosting off, with one reason', async (t) => {
	const {sw, calls} = fakeSwitch('EPERM');
	const reasons: string[] = [];
	const boost = new SectionBoost(sw, (r) => reasons.push(r));
	t.equal(boost.enter(), false);
	t.equal(boost.enter(), false);
	boost.leave();
	t.same(calls, ['enter'], 'no second attempt, nothing to leave');
	t.equal(reasons.length, 1);
	t.match(reasons[0], /SCHED_FIFO.*EPERM/);
	t.equal(boost.enabled, false);
});

t.test('a failed leave turns boosting off', async (t) => {
	const {sw} = fakeSwitch(0, 'EINVAL');
	const reasons: string[] = [];
	const boost = new SectionBoost(sw, (r) => reasons.push(r));
	t.equal(boost.enter(), true);
	boost.leave();
	t.equal(boost.enabled, false);
	t.equal(boost.enter(), false);
	t.match(reasons, [/leave SCHED_FIFO.*EINVAL/]);
});
