// Choosing the accelerator (src/qemu/accel.ts): KVM is usable only with a
// vmx/svm flag on cpuinfo's flags line and a /dev/kvm that opens read-write,
// checked here with made-up cpuinfo texts and real paths in a temp dir; TCG
// when asked; and `auto` and `kvm` agreeing with what kvmUsable() says of
// this machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {chooseAccel, kvmUsable} from '../../src/qemu/accel.js';

const cpuinfo = (flags: string) =>
	[0, 1].map((n) => `processor\t: ${n}\nvendor_id\t: GenuineIntel\nmodel name\t: Some vmx-less CPU\nflags\t\t: ${flags}\nbogomips\t: 4000.00\n`).join('\n');

/** A temp dir with a regular file standing in for /dev/kvm. */
function fakeKvm(t: Pick<Test, 'teardown'>): {dir: string; file: string} {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-accel-test-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const file = path.join(dir, 'kvm');
	fs.writeFileSync(file, '');
	return {dir, file};
}

t.test('KVM is usable with vmx or svm and a device that opens', async (t) => {
	const {file} = fakeKvm(t);
	t.same(kvmUsable(cpuinfo('fpu vme de pse tsc msr vmx sse sse2'), file), {ok: true, why: `the CPU has vmx/svm and ${file} opens`}, 'Intel (vmx)');
	t.same(kvmUsable(cpuinfo('fpu svm sse'), file), {ok: true, why: `the CPU has vmx/svm and ${file} opens`}, 'AMD (svm)');
	t.equal(kvmUsable(cpuinfo('vmx'), file).ok, true, 'the flag alone on the line');
});

t.test('no vmx/svm flag: not usable, whatever the device', async (t) => {
	const {file} = fakeKvm(t);
	const no = {ok: false, why: 'the CPU has no vmx/svm flag'};
	t.same(kvmUsable(cpuinfo('fpu vme sse sse2 hypervisor'), file), no, 'no flag');
	t.same(kvmUsable(cpuinfo('fpu vmxx svm2 xsvm'), file), no, 'only words that contain the flags');
	t.same(
		kvmUsable(cpuinfo('fpu sse').replace('model name\t: Some vmx-less CPU', 'model name\t: vmx svm'), file),
		no,
		'the flags elsewhere than on a flags line',
	);
	t.same(kvmUsable('', file), no, 'no cpuinfo at all (unreadable)');
});

t.test('a device that does not open: not usable, and the reason names it and the error', async (t) => {
	const {dir} = fakeKvm(t);
	const missing = path.join(dir, 'no-such-kvm');
	t.same(kvmUsable(cpuinfo('vmx'), missing), {ok: false, why: `${missing} cannot be opened (ENOENT)`}, 'a missing path');
	t.same(kvmUsable(cpuinfo('svm'), dir), {ok: false, why: `${dir} cannot be opened (EISDIR)`}, 'a directory (opened read-write)');
	t.equal(fs.readdirSync(dir).length, 1, 'nothing was created by trying');
});

t.test('TCG when asked', async (t) => {
	t.same(chooseAccel('tcg'), {accel: 'tcg', args: ['-accel', 'tcg,thread=multi'], reason: 'TCG (multi-threaded) as requested'}, 'multi-threaded TCG');
});

t.test('auto and kvm agree with kvmUsable() on this machine', async (t) => {
	const here = kvmUsable();
	t.comment(`this machine: KVM ${here.ok ? 'usable' : 'not usable'}: ${here.why}`);
	const auto = chooseAccel('auto');
	const kvm = chooseAccel('kvm');
	t.same(chooseAccel(), auto, 'auto is the default');
	if (here.ok) {
		t.same(auto, {accel: 'kvm', args: ['-accel', 'kvm'], reason: `KVM: ${here.why}`}, 'auto picks KVM');
		t.same(kvm, auto, 'kvm as asked, and usable');
	} else {
		t.same(auto, {accel: 'tcg', args: ['-accel', 'tcg,thread=multi'], reason: `TCG (multi-threaded): ${here.why}`}, 'auto falls back to TCG, saying why');
		t.same(kvm, {accel: 'kvm', args: ['-accel', 'kvm'], reason: `KVM as requested, although ${here.why}`}, 'kvm as asked, saying why it may fail');
	}
});
