// End to end, a hostile guest: `pvhint attack` garbles the shared-memory
// header, forges invalid records and masks naming vCPUs that do not exist,
// floods the ring and pushes the head past 2^52. pvrun must keep running,
// never let a vCPU thread run outside the allowed CPUs, report every kind of
// anomaly as counters in the event log, and serve honest hints afterwards;
// then a kick flood from guest user space costs pvrun little CPU, memory and log.
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {helperOf} from '../helpers/host-view.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

/**
 * In the guest: stop the agent and write zeros into the fast path's kick port for 6 s, saying
 * "flood /dev/vportNpM" when it begins (commas stand for spaces).
 */
const kickFlood =
	'p=$(grep,-l,org.pvrun.kick,/sys/class/virtio-ports/*/name);d=/dev/$(basename,$(dirname,$p));kill,$(pidof,pvagent);sleep,1;echo,flood,$d;timeout,6,cat,/dev/zero,>,$d;echo,flood,done';

/** Boot a guest through pvrun that attacks the channel, then pins a busy process to vCPU 1 (then runs `after`). */
async function attackRun(t: Test, pvArgs: string[], allowed: number[], after = '') {
	const {guest, logFile} = await bootThroughPvrun(t, {run: `sleep,1;pvhint,attack;/usr/share/pvrun/pin-busy.sh,0x2,3,1${after ? `;${after}` : ''}`, pvArgs});
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

/** A process's CPU time (s) and resident size (MB) from /proc. */
function usage(pid: number): {cpuS: number; rssMB: number} {
	const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
	const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	const rss = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
	return {cpuS: (Number(f[11]) + Number(f[12])) / 100, rssMB: Number(rss ?? 0) / 1024};
}

t.test('a hostile guest costs only its own hints', async (t) => {
	const allowed = ownCpus();
	const {guest, logFile, qemuPid, threads} = await attackRun(t, [], allowed, kickFlood);
	await guest.waitFor('pin-busy: pinned', 30_000);
	const ok = (await within(2000, () => hasExclusiveCpu(qemuPid, threads, 1))) >= 0;
	t.ok(ok, 'after the attack an honest taskset still gets vCPU 1 a CPU of its own within 2 s');
	await guest.waitFor('pin-busy: done', 30_000);

	// Then a kick flood from guest user space: pvrun's helper (the hint session) stays cheap.
	const started = await guest.waitFor(/^flood /, 30_000);
	t.match(started, /^flood \/dev\/vport\d+p\d+/, `the guest floods its kick port (${started})`);
	const helper = helperOf(qemuPid);
	t.ok(helper > 0, "pvrun's helper found");
	await new Promise((r) => setTimeout(r, 1000));
	const before = usage(helper);
	const logBefore = fs.statSync(logFile).size;
	const t0 = performance.now();
	let rssMB = before.rssMB;
	while (performance.now() - t0 < 4000) {
		await new Promise((r) => setTimeout(r, 200));
		rssMB = Math.max(rssMB, usage(helper).rssMB);
	}
	const seconds = (performance.now() - t0) / 1000;
	const cpu = (usage(helper).cpuS - before.cpuS) / seconds;
	const logRate = (fs.statSync(logFile).size - logBefore) / seconds;
	t.ok(cpu < 0.1, `pvrun used ${(cpu * 100).toFixed(1)} % of a CPU during the flood (measured 1.7–4.0 % over 10 s; 175 % before the kick budget)`);
	t.ok(rssMB < 150, `its memory stayed bounded (${rssMB.toFixed(0)} MB resident)`);
	t.ok(logRate < 2000, `its event log grew ${logRate.toFixed(0)} bytes a second`);
	await guest.waitFor('flood done', 30_000);
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
