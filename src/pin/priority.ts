// Whether grants can be made by priority (--pv-placement priority,
// docs/placement.md): the granted vCPU thread in SCHED_FIFO 1. Asked of the
// kernel itself, since a cgroup with real-time group scheduling and no
// real-time time of its own (as libvirt's may be) refuses it to root too.
import type {CsMode} from '../vm/config.js';
import {setThreadFifo, threadPolicy} from '../host/libc.js';
import {firstLine} from '../util/errors.js';

/**
 * Why grants cannot be made by priority here (docs/placement.md), or undefined when they can:
 * the kernel is asked, with vCPU thread `tid` raised and lowered at once (a cgroup with real-time
 * group scheduling and no real-time time, as libvirt's may be, refuses it).
 */
export function priorityUnavailable(cs: CsMode, qemuPid: number, tid: number | undefined): string | undefined {
	if (cs === 'act') return "--pv-cs act sets the vCPU threads' scheduling class";
	if (process.geteuid?.() !== 0) return 'not root: SCHED_FIFO needs CAP_SYS_NICE';
	if (tid === undefined) return 'no vCPU thread';
	try {
		const policy = threadPolicy(qemuPid, tid);
		if (policy !== 0) return `vCPU thread ${tid} is in scheduling policy ${policy}, not SCHED_OTHER: someone else sets the classes`;
		setThreadFifo(tid, true);
		setThreadFifo(tid, false);
		return undefined;
	} catch (error) {
		return `the kernel refuses SCHED_FIFO for vCPU thread ${tid}: ${firstLine(error)}`;
	}
}
