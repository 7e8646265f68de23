// What pvrun probes of the host before planning, once: its CPUs, the
// accelerator, and whether the fast path is built (make builds it).
import t from 'tap';
import {ownCpus} from '../../src/host/cpus.js';
import {kvmUsable} from '../../src/qemu/accel.js';
import {probeHost} from '../../src/vm/probe.js';

t.test('the host facts a plan is made from', async (t) => {
	const facts = probeHost({accel: 'auto', fastPath: true});
	t.same(facts.ownCpus, ownCpus(), "this process's CPUs");
	t.equal(facts.fastPath, true, 'make builds the native fast path');
	t.equal(facts.accel.accel, kvmUsable().ok ? 'kvm' : 'tcg', 'auto: KVM only where it can run a guest');
	t.match(facts.accel.reason, /^(KVM|TCG)/);
	t.equal(probeHost({accel: 'tcg', fastPath: false}).fastPath, '--pv-fast-path off', 'why the fast path does not run');
	t.same(probeHost({accel: 'tcg', fastPath: true}).accel.args, ['-accel', 'tcg,thread=multi']);
});
