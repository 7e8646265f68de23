// End to end under KVM, wherever KVM can really run a guest (the CPU has
// vmx/svm and /dev/kvm opens: the same check pvrun's --pv-accel auto makes):
// pvrun picks KVM, the vCPU threads are KVM's, and a guest thread pinned to
// vCPU 1 gives that vCPU's host thread a CPU of its own, as under TCG.
// Elsewhere (CI, machines without nested virtualization) it is reported as
// not run, with the reason. The manual check for laptops: docs/kvm.md.
import fs from 'node:fs';
import t from 'tap';
import {kvmUsable} from '../../src/qemu/accel.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

const kvm = kvmUsable();

t.test(
	'under KVM: pvrun picks it, and a guest pin gets vCPU 1 a CPU of its own',
	{skip: kvm.ok ? false : `not run: KVM cannot run a guest here (${kvm.why})`},
	async (t) => {
		const {guest, logFile} = await bootThroughPvrun(t, {run: '/usr/share/pvrun/pin-busy.sh,0x2,4', pvArgs: ['--pv-accel', 'auto']});
		await guest.waitFor('pin-busy: pinned', 60_000);
		t.match(guest.stderr(), /^pvrun: accelerator: KVM: the CPU has vmx\/svm and \/dev\/kvm opens$/m, 'pvrun chose KVM, and said why');
		const {qemuPid, threads} = await vmFromLog(logFile);
		t.same(
			threads.map((tid) => fs.readFileSync(`/proc/${qemuPid}/task/${tid}/comm`, 'utf8').trim()),
			['CPU 0/KVM', 'CPU 1/KVM'],
			"QEMU's vCPU threads are KVM's",
		);
		t.ok((await within(2000, () => hasExclusiveCpu(qemuPid, threads, 1))) >= 0, 'within 2 s vCPU 1 has exactly one CPU that no other vCPU thread has');
		// pvrun logs a decision after applying it: a moment later.
		t.ok((await within(1000, () => readEventLog(logFile).some((e) => e.event === 'pin' && e['vcpu'] === 1))) >= 0, 'the decision is in the event log');
		await guest.waitFor('pin-busy: done', 30_000);
		t.equal(await guest.exited, 0, 'the guest powers off; QEMU exits 0');
	},
);
