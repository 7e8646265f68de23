// A token bucket: a burst up to its capacity at once, then its rate.
import t from 'tap';
import {TokenBucket} from '../../src/util/token-bucket.js';

t.test('full at first; spent units come back at the rate, never above the capacity', async (t) => {
	let now = 0;
	const bucket = new TokenBucket(3, 0.01, () => now);
	t.equal(bucket.tokens, 3, 'full');
	for (let i = 0; i < 3; i++) bucket.spend(1);
	t.equal(bucket.tokens, 0, 'a burst of the capacity spends it');
	t.equal(bucket.msUntil(1), 100, 'one back in 100 ms');
	now = 50;
	t.equal(bucket.tokens, 0.5);
	bucket.spend(0.25);
	t.equal(bucket.msUntil(1), 75);
	now = 10_000;
	t.equal(bucket.tokens, 3, 'refilled up to the capacity, no more');
	t.equal(bucket.msUntil(1), 0, 'available now');
});
