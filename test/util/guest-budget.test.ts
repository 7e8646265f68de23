// --pv-guest-cpu's budgets: each cost is the host time it is estimated to take over the share,
// so halving the share doubles every cost and halves the bytes read from the agent's port.
import t from 'tap';
import {defaultGuestCpuPercent, guestBudget, hostCostMs} from '../../src/util/guest-budget.js';

const near = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

t.test('the default share is 5 %: an empty kick costs 12 ms of credit, the port is read at 64 KiB per 100 ms', async (t) => {
	const b = guestBudget();
	t.equal(b.percent, defaultGuestCpuPercent);
	t.equal(b.percent, 5);
	t.ok(near(b.emptyKickMs, 12));
	t.ok(near(b.newsKickMs, hostCostMs.newsKick * 20));
	t.ok(near(b.decisionMs, hostCostMs.decision * 20));
	t.equal(b.inputBytes, 64 * 1024);
	t.equal(b.inputWindowMs, 100);
});

t.test('costs scale with the inverse of the share, bytes with the share; the burst is a second of credit', async (t) => {
	const a = guestBudget(10);
	const b = guestBudget(2.5);
	t.ok(near(b.newsKickMs, 4 * a.newsKickMs));
	t.ok(near(b.recordMs, 4 * a.recordMs));
	t.ok(near(b.decisionMs, 4 * a.decisionMs));
	t.equal(a.inputBytes, 4 * b.inputBytes);
	t.equal(a.burstMs, 1000);
	t.equal(b.burstMs, 1000);
	// What a second of credit buys at most, in estimated host time: the share of that second.
	const spentMs = (1000 / b.newsKickMs) * hostCostMs.newsKick;
	t.ok(near(spentMs, 25), `${spentMs} ms of host time per second of credit at 2.5 %`);
});

t.test('off (0): nothing costs credit and the port is read without a limit; anything else out of range throws', async (t) => {
	const off = guestBudget(0);
	t.same([off.emptyKickMs, off.newsKickMs, off.recordMs, off.decisionMs], [0, 0, 0, 0]);
	t.equal(off.inputBytes, Infinity);
	for (const bad of [-1, 100.5, NaN]) t.throws(() => guestBudget(bad), RangeError, String(bad));
});
