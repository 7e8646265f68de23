// End to end: a guest thread pinned while no agent runs (before pvrun's
// program is loaded) is still a hint. When the agent starts, it runs the
// program's task iterator once, which reports every thread already pinned.
import t from 'tap';
import {readEventLog, type LoggedEvent} from '../../src/vm/event-log.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

t.test('a thread pinned before the program was loaded gets its vCPU a CPU when the agent starts', async (t) => {
	// Stop the agent, pin a busy process to vCPU 1 while none runs, then start the agent again.
	const {guest, logFile} = await bootThroughPvrun(t, {
		run: 'sleep,3;kill,$(pidof,pvagent);sleep,1;/usr/share/pvrun/pin-busy.sh,0x2,6,1&p=$!;sleep,3;pvagent&wait,$p',
	});
	await guest.waitFor('pin-busy: pinned', 60_000);
	const {qemuPid, threads} = await vmFromLog(logFile);
	t.notOk(hasExclusiveCpu(qemuPid, threads, 1), 'no agent, no program: the pin is not seen yet');
	const loadsBefore = readEventLog(logFile).filter((e) => e.event === 'program').length;
	t.equal(loadsBefore, 1, 'the program was loaded once, before the agent stopped');

	const after = await within(10_000, () => hasExclusiveCpu(qemuPid, threads, 1));
	t.ok(after >= 0, `vCPU 1 gets a CPU of its own after the agent restarts (${after.toFixed(0)} ms after the pin line)`);
	// pvrun logs a decision after applying it: wait a moment for the line.
	let pin: LoggedEvent | undefined;
	await within(1000, () => (pin = readEventLog(logFile).find((e) => e.event === 'pin' && e['vcpu'] === 1)) !== undefined);
	const events = readEventLog(logFile);
	const secondHello = events.filter((e) => e.event === 'agent' && e['state'] === 'hello')[1];
	t.ok(secondHello && pin && Number(pin.ms) >= Number(secondHello.ms), 'the pin follows the new agent (the snapshot at its load), not the taskset');
	t.notOk(
		events.some((e) => e.event === 'pin' && e['comm'] === 'pvagent'),
		"the agent's own pinned relay threads are never hints",
	);
	await guest.waitFor('pin-busy: done', 40_000);
	t.equal(await guest.exited, 0);
});
