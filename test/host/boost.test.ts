// pvrun's thread in SCHED_FIFO, bounded: it rests there between decisions,
// leaves past its CPU budget, comes back in the next window, and turns the
// boost off once, with one reason, when the kernel refuses.
import t from 'tap';
import {RestingBoost, type BoostSwitch} from '../../src/host/boost.js';
import {threadCpuTimeMs} from '../../src/host/libc.js';

// A switch that records calls and fails as told.
function fakeSwitch(enterResult: 0 | string = 0, leaveResult: 0 | string = 0) {
	const calls: string[] = [];
	const sw: BoostSwitch = {
		enter: () => (calls.push('enter'), enterResult),
		leave: () => (calls.push('leave'), leaveResult),
	};
	return {sw, calls};
}

t.test('resting: the thread stays in SCHED_FIFO between decisions, within a CPU budget per window', async (t) => {
	const {sw, calls} = fakeSwitch();
	let now = 0;
	let cpu = 0;
	const boost = new RestingBoost(sw, () => t.fail('not disabled'), () => cpu, {windowMs: 100, maxMs: 50}, () => now);
	t.teardown(() => boost.stop());
	boost.start();
	t.same(calls, ['enter'], 'in SCHED_FIFO from the start, waiting included');
	t.equal(boost.resting, true);
	for (let i = 0; i < 3; i++) {
		t.equal(boost.enter(), true, `decision ${i} runs boosted`);
		cpu += 10;
		now += 10;
		boost.leave();
	}
	t.same(calls, ['enter'], 'no switch per decision');
	cpu += 25; // 55 ms of this window's CPU: over the budget
	now += 5;
	t.equal(boost.enter(), false, 'past the budget the decision runs at normal priority');
	t.same(calls, ['enter', 'leave']);
	t.equal(boost.overBudget, 1);
	t.equal(boost.demotions, 1);
	now = 100; // a new window
	t.equal(boost.enter(), true, 'and boosted again in the next window');
	t.same(calls, ['enter', 'leave', 'enter']);
	boost.stop();
	t.same(calls, ['enter', 'leave', 'enter', 'leave'], 'stop leaves SCHED_FIFO');
	t.equal(boost.enter(), false, 'and nothing is boosted after it');
});

t.test('resting: CPU used between decisions (channel traffic) counts too: a window over its share costs the next one', async (t) => {
	const {sw, calls} = fakeSwitch();
	let now = 0;
	let cpu = 0;
	const boost = new RestingBoost(sw, () => t.fail('not disabled'), () => cpu, {windowMs: 100, maxMs: 50}, () => now);
	t.teardown(() => boost.stop());
	boost.start();
	// Only the window timer looks: 80 ms of CPU in a 100 ms window, no decision in between.
	cpu += 80;
	now += 100;
	boost.tick();
	t.equal(boost.resting, false, 'out of SCHED_FIFO for the next window');
	t.same(calls, ['enter', 'leave']);
	cpu += 10;
	now += 50;
	boost.tick();
	t.equal(boost.resting, false, 'still out within that window, though quiet');
	now += 50;
	boost.tick();
	t.equal(boost.resting, true, 'a quiet window brings it back');
	t.same(calls, ['enter', 'leave', 'enter']);
});

t.test('resting: a refused switch turns it off, with one reason', async (t) => {
	const {sw, calls} = fakeSwitch('EPERM');
	const reasons: string[] = [];
	const boost = new RestingBoost(sw, (r) => reasons.push(r), () => 0);
	boost.start();
	t.equal(boost.enter(), false);
	boost.leave();
	boost.stop();
	t.same(calls, ['enter'], 'tried once');
	t.equal(reasons.length, 1);
	t.match(reasons[0], /SCHED_FIFO.*EPERM/);
	t.equal(boost.enabled, false);
});

t.test('resting: without the thread\'s CPU time there is no SCHED_FIFO, and no exception', async (t) => {
	const {sw, calls} = fakeSwitch();
	const reasons: string[] = [];
	let broken = false;
	const boost = new RestingBoost(sw, (r) => reasons.push(r), () => {
		if (broken) throw new Error('clock_gettime failed');
		return 0;
	});
	boost.start();
	t.equal(boost.resting, true);
	broken = true;
	t.doesNotThrow(() => boost.tick());
	t.equal(boost.resting, false);
	t.same(calls, ['enter', 'leave']);
	t.match(reasons, [/CPU time.*clock_gettime failed.*SCHED_FIFO turned off/]);
	t.equal(boost.enter(), false);
	boost.stop();
});

t.test("threadCpuTimeMs reads the calling thread's CPU time", async (t) => {
	const before = threadCpuTimeMs();
	const until = performance.now() + 30;
	while (performance.now() < until); // 30 ms of this thread's CPU
	const used = threadCpuTimeMs() - before;
	t.ok(used >= 20 && used < 1000, `~30 ms counted (${used.toFixed(1)} ms)`);
});
