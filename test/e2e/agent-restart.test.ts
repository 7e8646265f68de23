// End to end, the agent restarting inside the guest: pvrun notices the port
// closing (hints reset), says hello to the new agent, pushes the affinity
// program again, and hints work as before.
import t from 'tap';
import {readEventLog} from '../../src/vm/event-log.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

t.test('a restarted agent gets its program again and hints keep working', async (t) => {
	const {guest, logFile} = await bootThroughPvrun(t, {run: 'sleep,3;kill,$(pidof,pvagent);sleep,1;pvagent&sleep,3;/usr/share/pvrun/pin-busy.sh,0x2,2,1'});
	await guest.waitFor('pin-busy: pinned', 60_000);
	const events = readEventLog(logFile);
	const sequence = events.filter((e) => e.event === 'agent' || e.event === 'program').map((e) => (e.event === 'agent' ? String(e['state']) : 'program'));
	t.same(sequence, ['hello', 'program', 'closed', 'hello', 'program'], 'hello, load; port closed; hello, load again');
	const {qemuPid, threads} = await vmFromLog(logFile);
	const exclusive = (await within(2000, () => hasExclusiveCpu(qemuPid, threads, 1))) >= 0;
	t.ok(exclusive, "the new agent's hint gives vCPU 1 a CPU of its own within 2 s");
	await guest.waitFor('pin-busy: done', 30_000);
	t.equal(await guest.exited, 0);
});
