// The two sources of the host's view of vCPU threads (--pv-cs-feedback bpf |
// proc) side by side, with --pv-cs off as the baseline: how late the slot's
// vcpu_preempted flag follows a real preemption (resolution), and what each
// costs the host (pvrun's CPU time, the observer's looks, the BPF program).
// One guest per configuration and repetition, 2 vCPUs on 2 host CPUs; a guest
// thread holds a critical section on vCPU 1; ten times, a SCHED_FIFO loop on
// host CPU 1 (hog.c, which says when it began to run there) preempts vCPU 1's
// thread for 150 ms, and a poller here reads the slot until the flag appears.
// Run as root: node --import=tsx bench/experiments/2026-12-04-cs-feedback-sources/measure.ts
import {execa} from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {bootGuest, pvrunCommand, readyLine} from '../../../src/guest/boot.js';
import {setThreadAffinity} from '../../../src/host/libc.js';
import {ensureImage} from '../../../src/image/build.js';
import {Slot, SlotFlag, slotSize, slotsOffset} from '../../../src/shm/layout.js';
import {loggedVm, readEventLog} from '../../../src/vm/event-log.js';

const trials = 10;
const configs = [
	{name: 'off', pv: ['--pv-cs', 'off']},
	{name: 'proc', pv: ['--pv-cs', 'observe', '--pv-cs-feedback', 'proc']},
	{name: 'bpf', pv: ['--pv-cs', 'observe', '--pv-cs-feedback', 'bpf']},
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cpuTicks = (pid: number): number => {
	const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
	const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	return Number(f[11]) + Number(f[12]); // utime + stime
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

const image = await ensureImage();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-cs-sources-'));
const hogBin = path.join(dir, 'hog');
await execa('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', hogBin, path.join(import.meta.dirname, 'hog.c')]);
const hz = 100; // USER_HZ
setThreadAffinity(process.pid, [0]); // the poller stays off CPU 1, where the loop preempts vCPU 1
try {
	for (const rep of [1, 2, 3])
		for (const c of configs) {
			const logFile = path.join(dir, `${c.name}-${rep}.jsonl`);
			const guest = bootGuest({
				kernel: image.kernel,
				initrd: image.initrd,
				cpus: 2,
				run: 'taskset,-c,1,pvcs,hold,30',
				launcher: pvrunCommand('--pv-log', logFile, ...c.pv),
			});
			try {
				await guest.waitFor(readyLine, 60_000);
				await guest.waitFor(/^pvcs: holding /, 30_000);
				const vm = loggedVm(readEventLog(logFile));
				// pvrun became QEMU; its helper (a child of QEMU's process) serves the channel.
				const pvrunPid = Number(fs.readFileSync(`/proc/${guest.pid}/task/${guest.pid}/children`, 'utf8').trim().split(' ')[0]);
				const shm = String(readEventLog(logFile).find((e) => e.event === 'start')?.['shm']);
				if (!vm || !pvrunPid) throw new Error('no VM in the log');
				const vcpu1 = vm.threads[1] ?? 0;
				setThreadAffinity(vcpu1, [1]);
				await sleep(300);
				const fd = fs.openSync(shm, 'r');
				const slot = Buffer.alloc(slotSize);
				const flagged = () => (fs.readSync(fd, slot, 0, slotSize, slotsOffset + slotSize), slot.readUInt32LE(Slot.flags) & SlotFlag.vcpuPreempted);
				const cpu0 = cpuTicks(pvrunPid);
				const t0 = performance.now();
				const delays: number[] = [];
				const stamped: number[] = [];
				let missed = 0;
				for (let i = 0; i < trials; i++) {
					const clear = performance.now() + 200;
					while (flagged() && performance.now() < clear) await sleep(1);
					const hog = execa(hogBin, ['1', '150'], {reject: false});
					let seenAt: bigint | undefined;
					let flagsNs = 0n;
					const until = performance.now() + 140;
					while (performance.now() < until) {
						if (flagged()) {
							seenAt = process.hrtime.bigint();
							flagsNs = slot.readBigUInt64LE(Slot.flagsNs);
							break;
						}
					}
					const began = BigInt(String((await hog).stdout).trim() || '0');
					if (seenAt !== undefined && began > 0n) {
						delays.push(Number(seenAt - began) / 1e3);
						stamped.push(Number(flagsNs - began) / 1e3);
					} else missed++;
					await sleep(150);
				}
				const seconds = (performance.now() - t0) / 1000;
				const pvrunCpuMs = ((cpuTicks(pvrunPid) - cpu0) * 1000) / hz;
				fs.closeSync(fd);
				await guest.stop();
				const last = readEventLog(logFile)
					.filter((e) => e.event === 'cs' && Array.isArray(e['vcpus']))
					.at(-1) as {looks?: number; lookUs?: number; bpf?: {threadUs: number; programUs: number; programRuns: number; wakeups: number}} | undefined;
				console.log(
					JSON.stringify({
						rep,
						config: c.name,
						trials,
						missed,
						seenP50Us: Math.round(pct(delays, 0.5)),
						seenMaxUs: Math.round(pct(delays, 1)),
						flagsNsP50Us: Math.round(pct(stamped, 0.5)),
						flagsNsMaxUs: Math.round(pct(stamped, 1)),
						pvrunCpuPct: +((pvrunCpuMs / 10 / seconds) as number).toFixed(2),
						looks: last?.looks,
						lookUs: last?.lookUs,
						bpf: last?.bpf,
					}),
				);
			} finally {
				await guest.stop();
			}
		}
} finally {
	fs.rmSync(dir, {recursive: true, force: true});
}
