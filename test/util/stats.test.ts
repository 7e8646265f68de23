// Percentiles by nearest rank, and the median and range of repetitions.
import t from 'tap';
import {cv, percentiles, spread, jainIndex} from '../../src/util/stats.js';

t.test('percentiles: nearest rank over any order', async (t) => {
	const hundred = Array.from({length: 100}, (_, i) => 100 - i);
	t.same(percentiles(hundred), {n: 100, p50: 50, p90: 90, p99: 99, max: 100});
	t.same(percentiles([7]), {n: 1, p50: 7, p90: 7, p99: 7, max: 7});
	t.same(percentiles([3, 1, 2]), {n: 3, p50: 2, p90: 3, p99: 3, max: 3});
	t.same(percentiles([]), {n: 0, p50: 0, p90: 0, p99: 0, max: 0}, 'nothing measured: zeros, n 0');
});

t.test('spread: the median of an odd or even count, and the range', async (t) => {
	t.same(spread([5, 1, 3]), {n: 3, median: 3, min: 1, max: 5});
	t.same(spread([4, 1, 3, 2]), {n: 4, median: 2.5, min: 1, max: 4});
	t.same(spread([]), {n: 0, median: 0, min: 0, max: 0});
});

t.test('jainIndex: 1 when all are equal, 1/n when one has everything', async (t) => {
	t.equal(jainIndex([5, 5]), 1);
	t.equal(jainIndex([3, 0, 0]), 1 / 3);
	t.equal(jainIndex([300, 100]), 0.8);
	t.equal(jainIndex([]), undefined);
	t.equal(jainIndex([0, 0]), undefined);
});

t.test('cv: standard deviation (n - 1) over the mean; 0 for one value or a zero mean', async (t) => {
	t.equal(cv([10, 20]), 0.4714);
	t.equal(cv([5, 5, 5]), 0);
	t.equal(cv([7]), 0);
	t.equal(cv([-1, 1]), 0);
	t.equal(cv([-10, -20]), 0.4714, 'relative to the size of the mean');
});
