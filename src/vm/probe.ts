// What pvrun learns of the host before it plans a VM, in one place and once
// per run (the plan itself is pure: src/vm/plan.ts): the CPUs it may use,
// the accelerator (/proc/cpuinfo, /dev/kvm), whether the native fast path is
// built.
import {fastPathAvailable} from '../fast/binding.js';
import {ownCpus} from '../host/cpus.js';
import {chooseAccel, type AccelChoice} from '../qemu/accel.js';
import type {VmConfig} from './config.js';

export interface HostFacts {
	/** The CPUs this process may run on (its affinity). */
	ownCpus: number[];
	/** The accelerator for the configuration's --pv-accel, and why. */
	accel: AccelChoice;
	/** true, or why the fast path cannot run (not built, or --pv-fast-path off). */
	fastPath: true | string;
}

/** Probe the host for `config`. */
export function probeHost(config: Pick<VmConfig, 'accel' | 'fastPath'>): HostFacts {
	return {ownCpus: ownCpus(), accel: chooseAccel(config.accel), fastPath: config.fastPath ? fastPathAvailable() : '--pv-fast-path off'};
}
