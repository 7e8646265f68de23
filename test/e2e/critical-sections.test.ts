// End to end, critical sections observed and acted on (--pv-cs act, which
// observes as --pv-cs observe does), in one guest that goes through three
// stages, each checked as it ends:
// 1. `pvhint live` waits until the programs of both features are attached.
//    An unprivileged guest thread holds a section on vCPU 1 while the host
//    makes vCPU 1's thread wait (pinned to one CPU beside a real-time busy
//    loop, for 2 s). The host sees the section in the thread's cell, sets
//    vcpu_preempted in vCPU 1's slot and counts the time lost; the guest
//    library reads the flag from vCPU 0. As root, the policy boosts vCPU 1
//    (a real-time thread of the same priority keeps the CPU: the boosts are
//    spent, then refused) and leaves its thread as it was.
// 2. Threads contend for kernel locks: the kernel lock program is attached and
//    each wait lands in its vCPU's slot, counted per vCPU.
// 3. A guest that garbles cells, slots and flags costs the host counters only.
import {execa} from 'execa';
import fs from 'node:fs';
import t from 'tap';
import {readyLine} from '../../src/guest/boot.js';
import {getThreadAffinity, setThreadAffinity} from '../../src/host/libc.js';
import {Cell, Header, Slot, SlotFlag, cellsOffset, slotSize, slotsOffset, shmSize} from '../../src/shm/layout.js';
import {readEventLog, type LoggedEvent} from '../../src/vm/event-log.js';
import {bootThroughPvrun, vmFromLog, within} from '../helpers/pvrun-vm.js';

const nobody = 65534;

/** The highest value of counter `name` in the log's `counters` events so far (they are logged when they change). */
const counterSoFar = (events: LoggedEvent[], name: string): number =>
	Math.max(0, ...events.filter((e) => e.event === 'counters').map((e) => Number(e[name] ?? 0)));

t.test('critical sections in a real guest: a preempted holder, kernel lock waits, a hostile guest', async (t) => {
	const {guest, logFile} = await bootThroughPvrun(t, {
		cpus: 2,
		pvArgs: ['--pv-cs', 'act'],
		run: [
			'pvhint,live,30000',
			'pvhint,feedback',
			`taskset,-c,1,pvcs,hold,5,-u,${nobody}`,
			'pvhint,feedback',
			'pvcs,contend,3,-t,4',
			// Time for the host's checks of the slots before the attack garbles them.
			'sleep,3',
			'pvhint,attack-cs',
			'taskset,-c,1,pvcs,hold,1',
			'pvhint,feedback',
		].join(';'),
	});
	await guest.waitFor(readyLine, 60_000);
	const {qemuPid, threads} = await vmFromLog(logFile);
	const shmPath = String(readEventLog(logFile).find((e) => e.event === 'start')?.['shm']);
	const fd = fs.openSync(shmPath, 'r');
	t.teardown(() => fs.closeSync(fd));
	const view = (): DataView => {
		const b = Buffer.alloc(shmSize);
		fs.readSync(fd, b, 0, shmSize, 0);
		return new DataView(b.buffer, b.byteOffset, b.byteLength);
	};

	await t.test('a section held on a preempted vCPU: seen in its cell, flagged in its slot, read by the guest', async (t) => {
		t.match(
			readEventLog(logFile).filter((e) => e.event === 'cs'),
			[{state: process.getuid?.() === 0 ? 'act' : 'observe', periodMs: 10, feedback: process.getuid?.() === 0 ? 'bpf' : 'proc'}],
			'acting starts; as root, the host view comes from the host BPF program (else: observing only)',
		);
		const feedback = await guest.waitFor(/^vcpu=1 /, 30_000);
		t.match(feedback, /^vcpu=1 state=floating pcpu=-1 preempted=[01] overloaded=[01] boosted=0 preempted_ms=\d+$/, 'pvhint feedback: one line per vCPU');
		t.match(
			guest.lines.find((l) => l.startsWith('pvhint: hints live')),
			/^pvhint: hints live after \d+ ms$/,
			'pvhint live returned',
		);
		t.match(
			guest.lines.find((l) => l.startsWith('pvhint: features')),
			/^pvhint: features host=0x3 agent=0x3$/,
			'the host acts on affinity and critical sections; pvhint live waited for the programs of both',
		);
		const holding = await guest.waitFor(/^pvcs: holding /, 30_000);
		const m = /cpu=(\d+) cell=(\d+) tid=(\d+)/.exec(holding);
		t.ok(m, `an unprivileged thread claimed a cell: ${holding}`);
		const [, cpu, cell, tid] = m ?? [];
		t.equal(cpu, '1', 'on vCPU 1 (taskset in the guest)');
		const base = cellsOffset + Number(cell) * 64;
		const v0 = view();
		t.ok(v0.getUint32(Header.cellsUsed, true) > Number(cell), 'cells_used covers the cell');
		t.equal(v0.getUint32(base + Cell.ownerTid, true), Number(tid), 'the cell names the guest thread');
		t.equal(v0.getUint32(base + Cell.depth, true), 1, 'inside one section');
		t.equal(v0.getInt32(base + Cell.cpu, true), 1, 'on vCPU 1');
		const running = await within(3000, () => view().getUint32(slotsOffset + slotSize + Slot.curTid, true) === Number(tid), 5);
		t.ok(
			running >= 0,
			`vCPU 1's slot names the thread it runs (the guest's sched_switch, copied by the agent): ${[0, 1].map((c) => view().getUint32(slotsOffset + c * slotSize + Slot.curTid, true)).join(', ')} for ${tid}`,
		);

		// Make vCPU 1's host thread wait: alone on CPU 1 with a real-time busy loop (SCHED_FIFO 1)
		// for 2 s. Nice would not do: with autogroups (Debian's default) the loop's session and
		// QEMU's would share the CPU half and half whatever their nice. The kernel's real-time
		// throttling leaves CPU 1 5 % for everything else, and the loop ends after 2 s.
		const vcpu1 = threads[1] ?? 0;
		setThreadAffinity(vcpu1, [1]);
		// timeout(1) stays outside: a real-time loop would never let it run on the same CPU.
		const hog = execa('timeout', ['-s', 'KILL', '2', 'taskset', '-c', '1', 'chrt', '-f', '1', 'sh', '-c', 'while :; do :; done'], {
			reject: false,
			timeout: 5000,
			killSignal: 'SIGKILL',
		});
		t.teardown(() => void hog.kill('SIGKILL'));
		let flagged = 0;
		let looks = 0;
		await within(1800, () => {
			looks++;
			if (view().getUint32(slotsOffset + slotSize + Slot.flags, true) & SlotFlag.vcpuPreempted) flagged++;
			return false;
		});
		await hog;
		t.same(getThreadAffinity(vcpu1), [1], 'a boost never moves the thread: still on CPU 1 alone');
		setThreadAffinity(vcpu1, [0, 1]);
		t.ok(flagged >= looks / 2, `vcpu_preempted set in vCPU 1's slot most of the time (${flagged} of ${looks} looks)`);
		t.ok(view().getBigUint64(slotsOffset + slotSize + Slot.preemptedNs, true) > 100_000_000n, 'its preempted_ns grew past 100 ms');

		const held = await guest.waitFor(/^pvcs: held /, 30_000);
		const seen = /preempted=(\d+)/.exec(held);
		t.ok(Number(seen?.[1]) > 0, `the guest library read vcpu_preempted for vCPU 1 from vCPU 0: ${held}`);
		await within(10_000, () => view().getUint32(base + Cell.ownerTid, true) === 0);
		t.equal(view().getUint32(base + Cell.ownerTid, true), 0, 'the thread ended: its cell is free again');
		t.equal(counterSoFar(readEventLog(logFile), 'badCell'), 0, 'no bad cell');
		const summaries = readEventLog(logFile).filter((e) => e.event === 'cs' && Array.isArray(e['vcpus'])) as unknown as {vcpus: {csMs: number}[]}[];
		t.ok(summaries.length >= 2, `cs summaries logged as the figures changed (${summaries.length})`);
		t.equal(summaries.at(-1)?.vcpus[0]?.csMs, 0, 'vCPU 0 was never inside a section so far');
		void qemuPid;
	});

	await t.test('kernel lock waits: the cs program attached, each wait in its vCPU slot', async (t) => {
		await guest.waitFor(/^pvcs: contended threads=4 ops=\d+$/, 60_000);
		t.match(
			guest.lines.filter((l) => l.startsWith('pvhint: features')).at(-1),
			/^pvhint: features host=0x3 agent=0x3$/,
			'the agent has the affinity and kernel lock programs attached (agent_features)',
		);
		t.match(
			readEventLog(logFile)
				.filter((e) => e.event === 'program')
				.map((e) => e['name']),
			['affinity', 'cs'],
			'pvrun loaded the kernel lock program after the affinity one',
		);
		const v = view();
		const waits = [0, 1].map((c) => v.getBigUint64(slotsOffset + c * slotSize + Slot.klockWaits, true));
		const waitNs = [0, 1].map((c) => v.getBigUint64(slotsOffset + c * slotSize + Slot.klockWaitNs, true));
		t.ok(waits.reduce((a, b) => a + b, 0n) > 0n, `kernel lock waits in the slots: ${waits.join(', ')}`);
		t.ok(waitNs.reduce((a, b) => a + b, 0n) > 0n, `and their time (ns): ${waitNs.join(', ')}`);
		t.ok(
			[0, 1].every((c) => v.getUint32(slotsOffset + c * slotSize + Slot.guestSeq, true) % 2 === 0),
			'no slot left mid-write',
		);
		// An end that woke no relay (bpf/cs.h) is still drained within a look or two: no wait stays shown.
		const ended = (): boolean => {
			const now = view();
			return [0, 1].every((c) => now.getUint32(slotsOffset + c * slotSize + Slot.klockWaiting, true) === 0);
		};
		await within(2_000, ended);
		t.ok(ended(), 'the contention over, no slot shows a wait within 2 s');
		t.equal(counterSoFar(readEventLog(logFile), 'badSlot'), 0, 'no bad slot');
		t.equal(counterSoFar(readEventLog(logFile), 'unknownType'), 0, 'and no cs record in the ring');
	});

	await t.test('a guest that garbles cells, slots and flags costs the host counters, nothing more', async (t) => {
		await guest.waitFor(/^pvhint: attack-cs done$/, 30_000);
		const held = await guest.waitFor(/^pvcs: held cpu=1 /, 30_000);
		t.ok(held, 'a section works after the attack');
		await guest.waitFor(/command exited with status 0/, 30_000);
		t.notOk(
			guest.lines.slice(guest.lines.indexOf(held)).some((l) => /^vcpu=\d .*boosted=1/.test(l)),
			"the guest's 0xffffffff in the flags words did not last: the host owns them",
		);
		await guest.stop();
		const events = readEventLog(logFile);
		const counters = events.find((e) => e.event === 'exit')?.['counters'] as {badCell?: number; badSlot?: number} | undefined;
		t.ok((counters?.badCell ?? 0) > 0, `impossible cells counted (badCell ${counters?.badCell})`);
		t.ok((counters?.badSlot ?? 0) > 0, `lock owners on vCPUs the VM lacks counted (badSlot ${counters?.badSlot})`);
		t.same(
			events.filter((e) => e.event === 'internal-error'),
			[],
			'no internal error',
		);
		const last = events.filter((e) => e.event === 'cs' && Array.isArray(e['vcpus'])).at(-1) as
			{vcpus: {csMs: number; csPreemptedMs: number; klockWaits: number}[]} | undefined;
		t.equal(last?.vcpus.length, 2, 'the summary has the two vCPUs, no more');
		const v1 = last?.vcpus[1];
		t.ok(v1 && v1.csMs >= 3000, `vCPU 1 was inside a section for about 5 s and more (${v1?.csMs} ms)`);
		t.ok(v1 && v1.csPreemptedMs >= 1000, `of which its host thread waited for a CPU at least 1 s of the hog's 2 s (${v1?.csPreemptedMs} ms)`);
		t.ok((last?.vcpus ?? []).reduce((a, x) => a + x.klockWaits, 0) > 0, `the summary counts the kernel lock waits: ${JSON.stringify(last?.vcpus)}`);
		if (process.getuid?.() === 0) {
			const bpf = (last as {bpf?: {writes: number; programRuns: number; delayMeanUs: number; threadUs: number}} | undefined)?.bpf;
			t.ok(bpf && bpf.writes > 0 && bpf.programRuns > 0, `the host program's cost is reported: ${JSON.stringify(bpf)}`);
			// Acting: vCPU 1 was preempted inside its section: boosted at once, until its budget's debt cap.
			const act = (last as {act?: {boosts: number; delayMeanUs: number; errors: number}} | undefined)?.act;
			const acted = last?.vcpus[1] as {boosts?: number; boostedMs?: number; refused?: number} | undefined;
			t.ok(act && act.boosts > 0 && act.errors === 0, `boosts applied, none refused by the kernel: ${JSON.stringify(act)}`);
			// How fast is the benchmark's and the unit test's (test/fast/sched.test.ts, 1 ms); here, over a
			// handful of boosts of a TCG guest, only that it acts while the preemption lasts, not a tick later.
			t.ok(act && act.delayMeanUs < 20_000, `while the preemption lasts: ${act?.delayMeanUs} µs on average after it`);
			t.ok(acted && (acted.boosts ?? 0) > 0 && (acted.refused ?? 0) > 0, `vCPU 1: boosted, then refused (${JSON.stringify(acted)})`);
			// The default bounds: 10 ms of boost per 100 ms, and none once 10 ms of payback is owed (at 100 %).
			t.ok(acted && (acted.boostedMs ?? Infinity) <= 10 + 0.1 * (v1?.csMs ?? 0), `and within its budget (${acted?.boostedMs} ms)`);
		}
	});
});
