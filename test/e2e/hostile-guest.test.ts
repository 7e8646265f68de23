// End to end, a hostile guest: `pvhint attack` garbles the shared-memory
// header, forges invalid records and masks naming vCPUs that do not exist,
// floods the ring and pushes the head past 2^52. pvrun must keep running,
// never let a vCPU thread run outside the allowed CPUs, report every kind of
// anomaly as counters in the event log, and serve honest hints afterwards.
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

/** Boot a guest through pvrun that attacks the channel, then pins a busy process to vCPU 1. */
async function attackRun(t: Test, pvArgs: string[], allowed: number[]) {
	const {guest, logFile} = await bootThroughPvrun(t, {run: 'sleep,1;pvhint,attack;/usr/share/pvrun/pin-busy.sh,0x2,3,1', pvArgs});
	await guest.waitFor('pvrun-guest: ready', 60_000);
	const {qemuPid, threads} = await vmFromLog(logFile);
	t.equal(threads.length, 2, 'two vCPU threads');

	// Sample every vCPU thread's CPUs all through the attack.
	const outside: string[] = [];
	let samples = 0;
	let attacking = true;
	const sampler = (async () => {
		while (attacking) {
			for (const tid of threads) {
				const cpus = threadCpusAllowed(qemuPid, tid);
				samples++;
				if (cpus.some((c) => !allowed.includes(c))) outside.push(`${tid}: ${cpus.join(',')}`);
			}
			await new Promise((r) => setTimeout(r, 25));
		}
	})();
	await guest.waitFor('pvhint: attack done', 60_000);
	attacking = false;
	await sampler;
	t.same(outside, [], `no vCPU thread outside CPUs ${allowed.join(',')} (${samples} samples during the attack)`);
	t.equal(fs.existsSync(`/proc/${guest.pid}`), true, 'pvrun is still running');
	return {guest, logFile, qemuPid, threads};
}

t.test('a hostile guest costs only its own hints', async (t) => {
	const allowed = ownCpus();
	const {guest, logFile, qemuPid, threads} = await attackRun(t, [], allowed);
	await guest.waitFor('pin-busy: pinned', 30_000);
	const ok = (await within(2000, () => hasExclusiveCpu(qemuPid, threads, 1))) >= 0;
	t.ok(ok, 'after the attack an honest taskset still gets vCPU 1 a CPU of its own within 2 s');
	await guest.waitFor('pin-busy: done', 30_000);
	t.equal(await guest.exited, 0, 'the VM ran to its end');
	const counters = readEventLog(logFile)
		.filter((e) => e.event === 'counters')
		.at(-1) ?? {event: 'none'};
	t.comment(`counters: ${JSON.stringify(counters)}`);
	for (const name of ['badHeader', 'badSeq', 'badLength', 'unknownType', 'badAffinity', 'maskOutOfRange', 'overrun', 'guestLost'])
		t.ok(Number(counters[name]) > 0, `${name} counted in the event log`);
});

t.test("with --pv-cpus, nothing ever runs outside the operator's CPUs", async (t) => {
	const allowed = [ownCpus().at(-1) ?? 0];
	const {guest, logFile} = await attackRun(t, ['--pv-cpus', String(allowed[0])], allowed);
	await guest.waitFor('pin-busy: stopped', 30_000);
	await guest.waitFor('pin-busy: done', 30_000);
	t.equal(await guest.exited, 0);
	t.ok(
		readEventLog(logFile).some((e) => e.event === 'deny' && (e['vcpus'] as number[]).includes(1)),
		'the request for vCPU 1 was denied and logged (one CPU cannot be given away)',
	);
});
