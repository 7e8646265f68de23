// A line budget: so many lines a window; the rest dropped and counted.
import t from 'tap';
import {LineBudget} from '../../src/util/line-budget.js';

t.test('at most so many lines a window; the dropped ones are counted with the next that goes', async (t) => {
	let now = 0;
	const budget = new LineBudget(2, 1000, () => now);
	t.same(budget.take(), {ok: true, dropped: 0});
	t.same(budget.take(), {ok: true, dropped: 0});
	t.same(budget.take(), {ok: false}, 'the third in the window is dropped');
	t.same(budget.take(), {ok: false});
	now = 999;
	t.same(budget.take(), {ok: false}, 'still the same window');
	now = 1000;
	t.same(budget.take(), {ok: true, dropped: 3}, 'a new window: the three dropped are counted');
	t.same(budget.take(), {ok: true, dropped: 0});
});
