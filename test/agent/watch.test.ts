// Whether hints are active: the agent's answers, and guest time without one
// (counted only while the guest runs), on a clock the test moves.
import t from 'tap';
import {AgentWatch} from '../../src/agent/watch.js';

function watch(waitMs = 60_000) {
	let now = 0;
	const w = new AgentWatch(waitMs, () => now);
	return {w, advance: (ms: number) => (now += ms)};
}

t.test('no agent: said once, after the wait counted in guest time only', async (t) => {
	const {w, advance} = watch();
	t.same(w.status, {state: 'waiting', reason: 'no guest agent has answered yet'});
	advance(600_000); // QEMU waiting under -S: not guest time
	t.equal(w.check(), undefined, 'a guest that never ran is not agentless');
	w.guestRunning(true);
	advance(40_000);
	w.guestRunning(false); // paused (virsh suspend)
	advance(600_000);
	t.equal(w.check(), undefined, 'paused time does not count');
	w.guestRunning(true);
	advance(19_999);
	t.equal(w.check(), undefined, '59.999 s of guest time');
	advance(1);
	t.match(w.check(), /^hints inactive: no pvrun guest agent answered within 60 s of guest time .*--pv-agent-wait/);
	t.same(w.status, {state: 'inactive', reason: 'no guest agent answered within 60 s of guest time'});
	advance(60_000);
	t.equal(w.check(), undefined, 'said once');
	advance(5_000);
	t.equal(w.hello(), 'hints active: the guest agent answered after 125 s of guest time', 'an agent that comes late is announced');
	t.same(w.status, {state: 'active'});
});

t.test('an agent in time: nothing said; one that cannot serve: why', async (t) => {
	const {w, advance} = watch();
	w.guestRunning(true);
	advance(3000);
	t.equal(w.hello(), undefined, 'the usual case says nothing');
	t.same(w.status, {state: 'active'});
	t.equal(w.check(), undefined);
	w.gone('the guest agent closed its port');
	t.same(w.status, {state: 'waiting', reason: 'the guest agent closed its port'});
	advance(59_000);
	t.equal(w.check(), undefined, 'the wait starts again when the agent goes');
	advance(1000);
	t.match(w.check(), /^hints inactive: no pvrun guest agent/);
	t.equal(
		w.hello('the guest agent found no pvrun shared memory'),
		'hints inactive: the guest agent found no pvrun shared memory; the VM runs as plain QEMU would',
	);
	t.same(w.status, {state: 'inactive', reason: 'the guest agent found no pvrun shared memory'});
	advance(120_000);
	t.equal(w.check(), undefined, 'an agent that answered is not reported missing');
});

t.test('an agent that answers late: waiting with the reason, its guest time counting on; once reported, it stays so', async (t) => {
	const {w, advance} = watch();
	w.guestRunning(true);
	advance(5000);
	w.slow('the guest agent has not answered yet: asking again');
	t.same(w.status, {state: 'waiting', reason: 'the guest agent has not answered yet: asking again'});
	advance(55_000);
	t.match(w.check(), /^hints inactive: no pvrun guest agent answered within 60 s/, 'the wait counted from the start, not from the retry');
	w.slow('the guest agent has not answered yet: asking again');
	t.equal(w.status.state, 'inactive', 'a retry does not take back what was reported');
	t.equal(w.hello(), 'hints active: the guest agent answered after 60 s of guest time', 'and its answer is announced');
});
