// `make demo`: boot the default guest through pvrun (TCG, 2 vCPUs), pin a
// busy guest process to vCPU 1 with taskset and release it, and show what the
// host did: each vCPU thread's CPUs before, during and after, the decisions
// from the event log, and the hint round trip measured inside the guest.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {bootGuest, pvrunCommand, readyLine} from '../guest/boot.js';
import {formatCpuList, threadCpusAllowed} from '../host/cpus.js';
import {ensureImage} from '../image/build.js';
import {PvrunError} from '../util/errors.js';
import {loggedVm, readEventLog} from '../vm/event-log.js';
import {createProgress} from '../util/progress.js';

export async function runDemo(): Promise<void> {
	const progress = createProgress('pvrun demo');
	const image = await ensureImage({progress: createProgress('pvrun image')});
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-demo-'));
	const logFile = path.join(dir, 'events.jsonl');
	const out = (line = '') => process.stdout.write(`${line}\n`);
	const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: '/usr/share/pvrun/demo.sh', launcher: pvrunCommand('--pv-log', logFile)});
	try {
		const started = performance.now();
		await guest.waitFor(readyLine, 60_000);
		progress.info(`guest booted through pvrun in ${((performance.now() - started) / 1000).toFixed(1)} s`);
		const events = () => readEventLog(logFile);
		const vm = loggedVm(events());
		if (!vm) throw new PvrunError('pvrun did not log its start: see the lines above');
		const {qemuPid, threads} = vm;
		const snapshot = () => threads.map((tid) => formatCpuList(threadCpusAllowed(qemuPid, tid)));

		const before = snapshot();
		await guest.waitFor('pin-busy: pinned', 60_000);
		await new Promise((r) => setTimeout(r, 500));
		const during = snapshot();
		await guest.waitFor('pin-busy: stopped', 30_000);
		await new Promise((r) => setTimeout(r, 500));
		const after = snapshot();
		const summary = await guest.waitFor(/^pvhint: /, 60_000);
		const code = await guest.exited;

		out();
		out('Guest: `taskset -p 0x2 <busy pid>` (pin to vCPU 1), then the process exits.');
		out('Host: CPUs each vCPU thread of QEMU may run on (/proc/<qemu>/task/<tid>/status):');
		out();
		out('  vCPU  host thread   before   during   after');
		threads.forEach((tid, v) =>
			out(`  ${String(v).padStart(4)}  ${String(tid).padStart(11)}   ${(before[v] ?? '').padEnd(7)}  ${(during[v] ?? '').padEnd(7)}  ${after[v] ?? ''}`),
		);
		out();
		out('Decisions (pvrun event log):');
		for (const e of events()
			.filter((e) => ['program', 'pin', 'float'].includes(e.event))
			.slice(0, 6)) {
			const ms = Number(e['ms']).toFixed(0).padStart(6);
			if (e.event === 'program') out(`  ${ms} ms  affinity BPF program pushed to the guest agent and attached (${String(e['loadMs'])} ms)`);
			else if (e.event === 'pin')
				out(`  ${ms} ms  vCPU ${String(e['vcpu'])} -> CPU ${String(e['pcpu'])} exclusive, for guest thread ${String(e['tid'])} (${String(e['comm'])})`);
			else out(`  ${ms} ms  vCPU ${String(e['vcpu'])} floats on CPUs ${formatCpuList(e['cpus'] as number[])}`);
		}
		const latency = events().find((e) => e.event === 'host-latency');
		out();
		out('Hint round trip, guest clock (pvhint: pin to vCPU 1, wait until the host confirms in shared memory):');
		const field = (k: string) => {
			const m = new RegExp(`${k}=([\\d.]+)`).exec(summary);
			return m?.[1] ? (Number(m[1]) / 1000).toFixed(2) : '?';
		};
		out(`  ${/n=(\d+)/.exec(summary)?.[1] ?? '?'} hints: p50 ${field('pin_p50_us')} ms, p90 ${field('pin_p90_us')} ms, p99 ${field('pin_p99_us')} ms`);
		if (latency)
			out(`  host side (record visible -> affinity applied): p50 ${Number(latency['p50Us']).toFixed(0)} µs, p99 ${Number(latency['p99Us']).toFixed(0)} µs`);
		out();
		const pinned = during[1]?.split(',').length === 1 && !(during[0] ?? '').split(',').includes(during[1] ?? '');
		const released = (after[1] ?? '').includes(',') || (after[1] ?? '').includes('-');
		if (!pinned || !released || code !== 0)
			throw new PvrunError(`demo failed: vCPU 1 ${pinned ? '' : 'was not pinned exclusively; '}${released ? '' : 'did not float again; '}QEMU exit ${code}`);
		progress.info('done: vCPU 1 had a CPU of its own while the guest asked for it, and floated again after');
	} finally {
		await guest.stop();
		fs.rmSync(dir, {recursive: true, force: true});
	}
}
