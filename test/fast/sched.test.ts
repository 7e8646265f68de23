// The host's view of vCPU threads from a host BPF program (bpf/vcpusched.bpf.c
// loaded by native/pvsched.c): first the TypeScript mirror against the
// headers, then the real program on this host, no QEMU: a busy process pinned
// to CPU 0 stands in for a vCPU thread, a SCHED_FIFO loop on CPU 0 preempts
// it, and the test reads the slot's flags where the guest would (the shared
// memory) and the program's totals where the observer would. Last, the
// critical-section policy's lever (native/cspolicy.h): the stand-in inside a
// section, a second busy process competing for CPU 0, and what the policy does
// to the stand-in's scheduling.
import {execFileSync, spawn} from 'node:child_process';
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {fastPathAvailable} from '../../src/fast/binding.js';
import {getThreadAffinity, setThreadAffinity} from '../../src/host/libc.js';
import {HostSched, VcpuSchedLayout, VcpuState, schedMaxVcpus, schedObjectPath, schedStatFields, waitedNs, type BoostConfig} from '../../src/fast/sched.js';
import {Cell, Header, Slot, SlotFlag, cellsOffset, slotSize, slotsOffset} from '../../src/shm/layout.js';
import {cProbeNumbers} from '../helpers/c-probe.js';
import {area} from '../helpers/guest-ring.js';

const probe = `
#include <stdio.h>
#include <stddef.h>
#include "../bpf/vcpusched.h"
#include "pvsched.h"
#define P(name, value) printf("%s %lld\\n", name, (long long)(value))
#define F(s, m) P(#s "." #m, offsetof(struct s, m))
int main(void) {
	P("maxVcpus", PV_SCHED_MAX_VCPUS);
	P("state.sleeping", PV_VS_SLEEPING); P("state.running", PV_VS_RUNNING); P("state.preempted", PV_VS_PREEMPTED); P("state.woken", PV_VS_WOKEN);
	P("sizeof.pv_vcpu_sched", sizeof(struct pv_vcpu_sched)); P("sizeof.pvs_stats", sizeof(struct pvs_stats));
	F(pv_vcpu_sched, seq); F(pv_vcpu_sched, state); F(pv_vcpu_sched, cpu); F(pv_vcpu_sched, flags); F(pv_vcpu_sched, since_ns);
	F(pv_vcpu_sched, run_ns); F(pv_vcpu_sched, wait_ns); F(pv_vcpu_sched, preemptions); F(pv_vcpu_sched, flags_ns); F(pv_vcpu_sched, by_self); F(pv_vcpu_sched, watched);
	F(pvs_stats, wakeups); F(pvs_stats, notices); F(pvs_stats, writes); F(pvs_stats, lat_n); F(pvs_stats, lat_sum_ns);
	F(pvs_stats, lat_max_ns); F(pvs_stats, thread_cpu_ns); F(pvs_stats, prog_run_ns); F(pvs_stats, prog_runs); F(pvs_stats, demotions);
	return 0;
}
`;

t.test('src/fast/sched.ts matches bpf/vcpusched.h and native/pvsched.h', async (t) => {
	const c = await cProbeNumbers(t, probe, 'native');
	const L = VcpuSchedLayout;
	const expect: Array<[string, number]> = [
		['maxVcpus', schedMaxVcpus],
		['state.sleeping', VcpuState.sleeping],
		['state.running', VcpuState.running],
		['state.preempted', VcpuState.preempted],
		['state.woken', VcpuState.woken],
		['sizeof.pv_vcpu_sched', L.size],
		['sizeof.pvs_stats', schedStatFields.length * 8],
		...(
			[
				['seq', L.seq],
				['state', L.state],
				['cpu', L.cpu],
				['flags', L.flags],
				['since_ns', L.sinceNs],
				['run_ns', L.runNs],
				['wait_ns', L.waitNs],
				['preemptions', L.preemptions],
				['flags_ns', L.flagsNs],
				['by_self', L.bySelf],
				['watched', L.watched],
			] as const
		).map(([m, o]) => [`pv_vcpu_sched.${m}`, o] as [string, number]),
		...['wakeups', 'notices', 'writes', 'lat_n', 'lat_sum_ns', 'lat_max_ns', 'thread_cpu_ns', 'prog_run_ns', 'prog_runs', 'demotions'].map(
			(m, i) => [`pvs_stats.${m}`, i * 8] as [string, number],
		),
	];
	for (const [key, value] of expect) t.equal(c.get(key), value, key);
	t.equal(c.size, expect.length, 'every probed value is compared');
});

t.test('waitedNs counts the wait in progress', async (t) => {
	const v = {state: VcpuState.preempted, cpu: 0, flags: 0, sinceNs: 1000, runNs: 5, waitNs: 100, preemptions: 1};
	t.equal(waitedNs(v, 1500), 600);
	t.equal(waitedNs({...v, state: VcpuState.running}, 1500), 100);
	t.equal(waitedNs(v, 500), 100, 'a clock behind the state adds nothing');
});

const why =
	process.getuid?.() !== 0
		? 'loading BPF on the host needs root'
		: fastPathAvailable() !== true
			? String(fastPathAvailable())
			: !fs.existsSync(schedObjectPath)
				? 'bpf/vcpusched.bpf.o is not built (run make)'
				: !fs.existsSync('/sys/kernel/btf/vmlinux')
					? 'the host kernel has no BTF'
					: false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a vCPU thread preempted on the host: flagged in its slot at once, counted exactly', {skip: why}, async (t) => {
	const shm = area(t, 2);
	const sched = HostSched.start(shm.path);
	t.teardown(() => sched.stop());
	// The stand-in vCPU 0: a busy loop on CPU 0.
	const busy = spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], {stdio: 'ignore'});
	t.teardown(() => void busy.kill('SIGKILL'));
	await sleep(100); // taskset has exec'd the shell: the pid is the busy thread
	sched.setVcpus([busy.pid ?? 0, 0]);
	sched.watch([true, false]); // as if a guest thread on vCPU 0 were inside a section
	await sleep(100);
	// A thread that runs alone is seen at its first switch: before may be all zeros.
	const before = sched.read(2)[0];
	const flags = () => Atomics.load(shm.u32, (slotsOffset + Slot.flags) / 4);

	// A real-time loop on CPU 0 for 400 ms: the busy thread is runnable and gets no CPU.
	const hog = spawn('timeout', ['-s', 'KILL', '0.4', 'taskset', '-c', '0', 'chrt', '-f', '1', 'sh', '-c', 'while :; do :; done'], {stdio: 'ignore'});
	t.teardown(() => void hog.kill('SIGKILL'));
	const until = Date.now() + 3000;
	while (Date.now() < until && !(flags() & SlotFlag.vcpuPreempted)) await sleep(2);
	const seen = flags();
	t.ok(seen & SlotFlag.vcpuPreempted, 'vcpu_preempted appears in the slot while the loop runs');
	t.ok(seen & SlotFlag.pcpuOverloaded, 'and pcpu_overloaded with it');
	await new Promise((r) => hog.once('exit', r));
	const clearBy = Date.now() + 2000;
	while (Date.now() < clearBy && flags() & SlotFlag.vcpuPreempted) await sleep(2);
	t.notOk(flags() & SlotFlag.vcpuPreempted, 'and leaves it when the loop ends');

	const after = sched.read(2)[0];
	t.ok(after, 'read after');
	if (!before || !after) return;
	t.ok(after.preemptions > before.preemptions, `preemptions counted (${before.preemptions} → ${after.preemptions})`);
	const waited = waitedNs(after, Number(process.hrtime.bigint())) - before.waitNs;
	t.ok(waited >= 250e6, `the wait is counted: ${Math.round(waited / 1e6)} ms of the loop's 400`);
	const slotWait = Number(shm.view.getBigUint64(slotsOffset + Slot.preemptedNs, true));
	t.ok(slotWait >= 250e6, `the slot's preempted_ns has it too (${Math.round(slotWait / 1e6)} ms)`);
	t.equal(sched.read(2)[1]?.state, VcpuState.sleeping, 'a vCPU with no thread stays as it was');
	t.equal(Atomics.load(shm.u32, (slotsOffset + slotSize + Slot.flags) / 4), 0, 'and its slot is not written');

	const s = sched.stats();
	t.ok(s.wakeups >= 2 && s.writes >= 2, `the thread woke for the changes (${s.wakeups} wakeups, ${s.writes} writes)`);
	t.ok(
		s.latN > 0 && s.latMaxNs < 1e9,
		`the delay from the switch to the slot is counted (mean ${Math.round(s.latSumNs / s.latN / 1e3)} µs, max ${Math.round(s.latMaxNs / 1e3)} µs)`,
	);
	t.ok(s.progRuns > 0, `the program's own cost is counted (${s.progRuns} runs, ${Math.round(s.progRunNs / 1e3)} µs)`);

	// Its own wake-ups preempt threads too, vCPUs among them: they must not wake it again. Each
	// wake-up must come from a real preemption of the thread (its start and its end), however
	// busy the machine is; a loop would wake it thousands of times.
	const quiet = sched.stats().wakeups;
	const preempted = sched.read(1)[0]?.preemptions ?? 0;
	await sleep(300);
	const more = sched.stats().wakeups - quiet;
	const real = (sched.read(1)[0]?.preemptions ?? 0) - preempted;
	// A loop would wake it about every 25 µs (its own cost): over 10 000 times in 300 ms. A busy
	// machine (tests beside this one) preempts the loop a few hundred times; 2000 tells them apart.
	t.ok(more <= 2 * real + 4 && more < 2000, `no wake-up for its own doing: ${more} wakeups, ${real} preemptions in 300 ms`);

	// Unwatched (no section on it): its preemption wakes nobody, and reaches the slot with the next sync.
	sched.watch([false, false]);
	const woke = sched.stats().wakeups;
	const hog2 = spawn('timeout', ['-s', 'KILL', '0.3', 'taskset', '-c', '0', 'chrt', '-f', '1', 'sh', '-c', 'while :; do :; done'], {stdio: 'ignore'});
	t.teardown(() => void hog2.kill('SIGKILL'));
	await sleep(150);
	sched.sync();
	t.ok(flags() & SlotFlag.vcpuPreempted, 'an unwatched vCPU: flagged by the sync');
	await new Promise((r) => hog2.once('exit', r));
	t.ok(sched.stats().wakeups - woke < 5, `and its thread did not wake for it (${sched.stats().wakeups - woke} wakeups)`);

	// A vCPU that runs a guest thread holding a cell (outside its sections): each change wakes
	// the thread, so the flag the guest's waiters read for the holder's vCPU is never stale.
	shm.view.setUint32(cellsOffset + Cell.ownerTid, 4242, true);
	shm.view.setInt32(cellsOffset + Cell.cpu, 0, true);
	shm.view.setUint32(Header.cellsUsed, 1, true);
	sched.sync(); // the look that finds the cell
	await sleep(50);
	const woken = sched.stats().wakeups;
	const hog3 = spawn('timeout', ['-s', 'KILL', '0.3', 'taskset', '-c', '0', 'chrt', '-f', '1', 'sh', '-c', 'while :; do :; done'], {stdio: 'ignore'});
	t.teardown(() => void hog3.kill('SIGKILL'));
	const setBy = Date.now() + 250;
	while (Date.now() < setBy && !(flags() & SlotFlag.vcpuPreempted)) await sleep(2);
	t.ok(flags() & SlotFlag.vcpuPreempted, "a cell holder's vCPU: flagged at its preemption, no look needed");
	await new Promise((r) => hog3.once('exit', r));
	// Its stand-in thread runs again once a CPU is free for it: on a loaded machine that can take
	// longer than a resync (250 ms), so the wake-ups below, not the time, show that no look was needed.
	const ran = Date.now();
	while (Date.now() < ran + 1000 && (flags() & SlotFlag.vcpuPreempted || sched.stats().wakeups - woken < 2)) await sleep(1);
	t.notOk(flags() & SlotFlag.vcpuPreempted, `and no longer once it runs again (${Date.now() - ran} ms)`);
	const wakes = sched.stats().wakeups - woken;
	t.ok(wakes >= 2, `the thread woke for both changes (${wakes} wakeups), not the next resync`);
	shm.view.setUint32(Header.cellsUsed, 0, true);
	sched.sync();

	// Stopped: the flags are cleared and the threads' switches change nothing more.
	sched.stop();
	t.equal(flags(), 0, 'stop clears the flags');
	t.same(sched.read(2), [], 'a stopped source reads nothing');
});

t.test('HostSched.start: a bad object is one clear error', {skip: why}, async (t) => {
	const shm = area(t, 2);
	t.throws(() => HostSched.start(shm.path, '/nonexistent/vcpusched.bpf.o'), /cannot load the host scheduler program: ENOENT/);
	t.throws(() => HostSched.start('/nonexistent/shm', schedObjectPath), /cannot load the host scheduler program: ENOENT/);
});

const ms = 1e6;
const config: BoostConfig = {maxNs: 1 * ms, windowNs: 100 * ms, budgetNs: 10 * ms, paybackPct: 200};

/** A thread's scheduling policy name as /proc shows it (field 41 of stat: 0 other, 1 fifo, 5 idle). */
function policyOf(pid: number): number {
	const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
	return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[41 - 3]);
}

/**
 * Run `fn` with this process's main thread on CPU `cpu` at SCHED_FIFO 1, then put both back.
 * A sampler that shares CPU 0 with a boosted thread runs only when the boost is over, so
 * it would never see one: it samples from the other CPU, ahead of whatever else runs there.
 */
async function fromCpu<T>(cpu: number, fn: () => Promise<T>): Promise<T> {
	const pid = String(process.pid);
	const cpus = getThreadAffinity(0);
	setThreadAffinity(0, [cpu]);
	execFileSync('chrt', ['-f', '-p', '1', pid], {stdio: 'ignore'});
	try {
		return await fn();
	} finally {
		execFileSync('chrt', ['-o', '-p', '0', pid], {stdio: 'ignore'});
		setThreadAffinity(0, cpus);
	}
}

/** A process's CPU time, ns (utime + stime, clock ticks). */
function cpuNs(pid: number): number {
	const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').slice(0, 4096);
	const after = f.slice(f.lastIndexOf(')') + 2).split(' ');
	return (Number(after[14 - 3]) + Number(after[15 - 3])) * 1e7;
}

/**
 * The host program on an area of `vcpus` slots, whose vCPU 0 is a busy stand-in thread with a
 * busy rival on CPU 0 (each preempts the other every few ms), and a guest thread's cell on
 * vCPU 0 (as the pvcs library writes it; the test sets its depth).
 */
async function standInWithRival(t: Test, vcpus: number) {
	const shm = area(t, vcpus);
	const sched = HostSched.start(shm.path);
	t.teardown(() => sched.stop());
	const loop = (): ReturnType<typeof spawn> => spawn('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], {stdio: 'ignore'});
	const vcpu0 = loop();
	const rival = loop();
	t.teardown(() => void vcpu0.kill('SIGKILL'));
	t.teardown(() => void rival.kill('SIGKILL'));
	await sleep(100);
	const pid = vcpu0.pid ?? 0;
	sched.setVcpus([pid, ...new Array<number>(vcpus - 1).fill(0)]);
	sched.watch(new Array<boolean>(vcpus).fill(true));
	shm.view.setUint32(cellsOffset + Cell.ownerTid, 4242, true);
	shm.view.setInt32(cellsOffset + Cell.cpu, 0, true);
	shm.view.setUint32(Header.cellsUsed, 1, true);
	return {shm, sched, pid, rival};
}

t.test('the real lever: a preempted thread inside a section runs at once, within its budget', {skip: why}, async (t) => {
	const {shm, sched, pid, rival} = await standInWithRival(t, 2);
	// A guest thread that never leaves its section, on vCPU 0.
	shm.view.setUint32(cellsOffset + Cell.depth, 1, true);
	// A generous budget first, to see the lever: its policy must be seen as SCHED_FIFO.
	sched.boost({maxNs: 5 * ms, windowNs: 100 * ms, budgetNs: 50 * ms, paybackPct: 0});
	const flags = () => Atomics.load(shm.u32, (slotsOffset + Slot.flags) / 4);
	let fifo = 0;
	let samples = 0;
	let boostedSeen = 0;
	let both = 0;
	await fromCpu(1, async () => {
		const seeUntil = Date.now() + 1000;
		while (Date.now() < seeUntil && (fifo < 3 || boostedSeen < 1)) {
			if (policyOf(pid) === 1) fifo++;
			const f = flags();
			if (f & SlotFlag.boosted) boostedSeen++;
			if (f & SlotFlag.boosted && f & SlotFlag.vcpuPreempted) both++;
			samples++;
			await sleep(0);
		}
	});
	t.ok(fifo > 0, `its policy was seen as SCHED_FIFO (${fifo} of ${samples} samples)`);
	// The guest is told: boosted, and not preempted (a waiter keeps spinning for a holder that runs at once).
	t.ok(boostedSeen > 0, `its slot said boosted (${boostedSeen} of ${samples} samples)`);
	t.equal(both, 0, 'never boosted and preempted at once');

	// The generous bounds end first: a boost still running when the default bounds start would be
	// charged at their payback rate at once and reach the debt cap (seen under load in CI).
	sched.boost({maxNs: 0, windowNs: 0, budgetNs: 0, paybackPct: 0});
	t.not(policyOf(pid), 1, 'boosts off: the thread is back to SCHED_OTHER');
	// The default bounds: a guest that never leaves its section gets 10 ms of boosts (the debt cap), then none.
	sched.boost(config);
	const before = sched.boosts(1).vcpus[0];
	const cpu0 = [cpuNs(pid), cpuNs(rival.pid ?? 0)];
	await sleep(1500);
	const used = [cpuNs(pid) - (cpu0[0] ?? 0), cpuNs(rival.pid ?? 0) - (cpu0[1] ?? 0)];
	const {stats, vcpus} = sched.boosts(2);
	const now = vcpus[0];
	const v =
		now && before
			? {...now, boosts: now.boosts - before.boosts, boostedNs: now.boostedNs - before.boostedNs, refused: now.refused - before.refused}
			: undefined;
	t.ok(v && v.boosts > 0, `boosted (${v?.boosts} boosts, ${(v?.boostedNs ?? 0) / ms} ms)`);
	t.ok(
		stats.actN > 0 && stats.actSumNs / stats.actN < 1 * ms,
		`within 1 ms of the preemption: mean ${Math.round(stats.actSumNs / Math.max(1, stats.actN) / 1e3)} µs, max ${Math.round(stats.actMaxNs / 1e3)} µs`,
	);
	// Never in a section's end: the debt cap stops the boosts after 10 ms of boost.
	t.ok(v && v.boostedNs <= 11 * ms, `boost time within the bound: ${(v?.boostedNs ?? 0) / ms} ms`);
	t.ok(v && v.refused > 0, `then its preemptions are refused (${v?.refused})`);
	// Refused, it is preempted like any vCPU, and the guest is told so.
	let told = 0;
	const tellUntil = Date.now() + 1000;
	while (Date.now() < tellUntil && !told) {
		const f = flags();
		if (f & SlotFlag.vcpuPreempted && !(f & SlotFlag.boosted)) told++;
		await sleep(1);
	}
	t.ok(told, 'refused: its slot says preempted, not boosted');
	const share = (used[0] ?? 0) / Math.max(1, (used[0] ?? 0) + (used[1] ?? 0));
	t.ok(share < 0.6, `the rival kept its share: the stand-in had ${Math.round(share * 100)} % of CPU 0`);
	t.equal(vcpus[1]?.boosts, 0, 'a vCPU with no thread is left alone');

	// Out of the section: the debt is paid back under SCHED_IDLE, then normal.
	shm.view.setUint32(cellsOffset + Cell.depth, 0, true);
	let idle = 0;
	const payUntil = Date.now() + 1000;
	while (Date.now() < payUntil && (sched.boosts(1).vcpus[0]?.debtNs ?? 0) > 0) {
		if (policyOf(pid) === 5) idle++;
		await sleep(1);
	}
	const paid = sched.boosts(1).vcpus[0];
	t.equal(paid?.debtNs, 0, `the debt is paid (${(paid?.paidNs ?? 0) / ms} ms)`);
	t.ok(idle > 0, 'under SCHED_IDLE');
	await sleep(20);
	t.equal(policyOf(pid), 0, 'then SCHED_OTHER again');

	// Stopping leaves no thread changed, even one boosted at that moment.
	shm.view.setUint32(cellsOffset + Cell.depth, 1, true);
	sched.boost({...config, paybackPct: 0, budgetNs: 50 * ms, windowNs: 100 * ms});
	const bUntil = Date.now() + 1000;
	while (Date.now() < bUntil && policyOf(pid) !== 1) await sleep(0);
	sched.stop();
	t.equal(policyOf(pid), 0, 'stop puts a boosted thread back to SCHED_OTHER');
});

t.test('a holder that moved to another vCPU since the last look: acted on without one', {skip: why}, async (t) => {
	const {shm, sched} = await standInWithRival(t, 2);
	sched.watch([false, false]); // no section seen by a look: only the holder watch can wake the thread
	// The cell's thread began its last section on vCPU 1 (no thread there) when acting started...
	shm.view.setInt32(cellsOffset + Cell.cpu, 1, true);
	sched.boost({maxNs: 1 * ms, windowNs: 100 * ms, budgetNs: 50 * ms, paybackPct: 0});
	await sleep(50);
	// ...then the guest moved it to vCPU 0 and it entered a section there; pvrun takes no look.
	shm.view.setUint32(slotsOffset + Slot.curTid, 4242, true);
	shm.view.setUint32(cellsOffset + Cell.depth, 1, true);
	const before = sched.boosts(1).stats;
	await sleep(1000);
	const after = sched.boosts(1).stats;
	const n = after.actN - before.actN;
	const meanUs = Math.round((after.actSumNs - before.actSumNs) / Math.max(1, n) / 1e3);
	// Found only at a resync (every 250 ms), it would be boosted at most once per resync, late.
	t.ok(n >= 10, `its preemptions were acted on: ${n} boosts in 1 s`);
	t.ok(n > 0 && meanUs < 1000, `each within 1 ms of the preemption (mean ${meanUs} µs, max ${Math.round(after.actMaxNs / 1e3)} µs)`);
});

/** The scheduler's load average of thread `pid` (se.avg.load_avg in /proc/PID/sched), or undefined. */
function loadAvgOf(pid: number): number | undefined {
	const m = /se\.avg\.load_avg\s*:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/sched`, 'utf8'));
	return m ? Number(m[1]) : undefined;
}

t.test('a boost paid back at once keeps the thread fairly weighted', {skip: why}, async (t) => {
	const {shm, sched, pid} = await standInWithRival(t, 1);
	sched.boost({maxNs: 1 * ms, windowNs: 100 * ms, budgetNs: 10 * ms, paybackPct: 100});
	// Sections of a few ms: preempted inside one it is boosted; out of it, it pays back at once.
	// Linux 6.18 left a thread moved straight from SCHED_FIFO to SCHED_IDLE with a load average
	// of 10^13 or more, and the thread then got half its fair share.
	let worst = 0;
	const until = Date.now() + 1500;
	for (let i = 0; Date.now() < until; i++) {
		shm.view.setUint32(cellsOffset + Cell.depth, i % 2, true);
		await sleep(3);
		worst = Math.max(worst, loadAvgOf(pid) ?? 0);
	}
	const v = sched.boosts(1).vcpus[0];
	t.ok(v && v.boosts > 10 && v.paidNs > 0, `boosted and paid back (${v?.boosts} boosts, ${(v?.paidNs ?? 0) / ms} ms paid)`);
	t.ok(worst <= 2048, `its load average stayed that of one busy thread (at most ${worst})`);
});
