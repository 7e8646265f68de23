// Choosing the accelerator honestly: KVM only when the CPU has hardware
// virtualization (vmx/svm) and /dev/kvm opens; otherwise multi-threaded TCG,
// where every vCPU is still its own host thread (so pinning is real).
import fs from 'node:fs';

export interface AccelChoice {
	accel: 'kvm' | 'tcg';
	/** QEMU arguments that select it. */
	args: string[];
	/** One line saying why. */
	reason: string;
}

/** Whether KVM can really run a guest here. */
export function kvmUsable(cpuinfo = readOr('/proc/cpuinfo'), devKvm = '/dev/kvm'): {ok: boolean; why: string} {
	if (!/^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo)) return {ok: false, why: 'the CPU has no vmx/svm flag'};
	try {
		fs.closeSync(fs.openSync(devKvm, 'r+'));
	} catch (error) {
		return {ok: false, why: `${devKvm} cannot be opened (${(error as NodeJS.ErrnoException).code ?? 'error'})`};
	}
	return {ok: true, why: `the CPU has vmx/svm and ${devKvm} opens`};
}

/** The accelerator for `wanted` (auto picks KVM only when it is usable). */
export function chooseAccel(wanted: 'auto' | 'kvm' | 'tcg' = 'auto'): AccelChoice {
	const tcg = (reason: string): AccelChoice => ({accel: 'tcg', args: ['-accel', 'tcg,thread=multi'], reason});
	if (wanted === 'tcg') return tcg('TCG (multi-threaded) as requested');
	const kvm = kvmUsable();
	if (kvm.ok) return {accel: 'kvm', args: ['-accel', 'kvm'], reason: `KVM: ${kvm.why}`};
	if (wanted === 'kvm') return {accel: 'kvm', args: ['-accel', 'kvm'], reason: `KVM as requested, although ${kvm.why}`};
	return tcg(`TCG (multi-threaded): ${kvm.why}`);
}

function readOr(file: string): string {
	try {
		return fs.readFileSync(file, 'utf8');
	} catch {
		return '';
	}
}
