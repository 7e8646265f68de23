// End to end, `pvrun trace` against one real guest under pvrun whose busy process taskset pins
// to vCPU 1 and lets go every second (pin-loop): runqlat and preempt key their maps by the
// vCPU threads the host shows in /proc/<qemu>/task, hint-delay sees pvrun's re-pins of vCPU 1,
// and the failures are one line each. One boot for all; each trace runs a few seconds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {bootGuest, pvrunCommand} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {packageRoot} from '../../src/util/paths.js';
import {helperOf} from '../helpers/host-view.js';
import {vmFromLog} from '../helpers/pvrun-vm.js';

const [node = 'node', ...cli] = pvrunCommand();
const mainJs = path.join(packageRoot, 'dist', 'cli', 'main.js');

/** The thread ids a map's keys name, from `@NAME[CPU N/TCG, TID...`, as [vCPU, tid]. */
const keyed = (stdout: string, map: string): Array<[number, number]> =>
	[...stdout.matchAll(new RegExp(`^@${map}\\[CPU (\\d+)/(?:TCG|KVM), (\\d+)[,\\]]`, 'gm'))].map((m) => [Number(m[1]), Number(m[2])]);

t.test('pvrun trace: runqlat, preempt and hint-delay on a guest that keeps pinning a busy process', async (t) => {
	// A runtime root of its own: this VM is the only one there, so --vm may be left out.
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-e2e-trace-'));
	const logFile = path.join(dir, 'events.jsonl');
	const env = {PVRUN_RUNTIME_DIR: dir};
	const image = await ensureImage();
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: 2,
		run: '/usr/share/pvrun/pin-loop.sh,0x2,1,1',
		launcher: ['env', `PVRUN_RUNTIME_DIR=${dir}`, ...pvrunCommand('--pv-log', logFile)],
	});
	t.teardown(async () => {
		await guest.stop();
		fs.rmSync(dir, {recursive: true, force: true});
	});
	await guest.waitFor('pin-loop: pinned', 90_000);
	const {qemuPid, threads} = await vmFromLog(logFile);
	t.equal(threads.length, 2, `two vCPU threads: ${threads.join(', ')}`);
	const id = fs.readdirSync(dir).find((n) => n.startsWith(`pvrun-${qemuPid}-`)) ?? '';
	const pvrunPid = helperOf(qemuPid, dir);
	t.ok(id && pvrunPid, `its run directory ${id}, its helper ${pvrunPid}`);
	const trace = (args: string[]) => execa(node, [...cli, 'trace', ...args], {env, reject: false, timeout: 60_000, forceKillAfterDelay: 5000});
	/** Each [vCPU, tid] is one of this QEMU's vCPU threads, as the host shows them. */
	const ours = (pairs: Array<[number, number]>): boolean =>
		pairs.every(([vcpu, tid]) => threads[vcpu] === tid && fs.existsSync(`/proc/${qemuPid}/task/${tid}`));

	const started = performance.now();
	const runq = await trace(['runqlat', '--duration', '3']);
	const runqS = (performance.now() - started) / 1000;
	t.equal(runq.exitCode, 0, `runqlat, without --vm: ${runq.stderr}`);
	t.ok(runqS >= 3 && runqS < 45, `it ended by itself after its 3 s (${runqS.toFixed(1)} s with bpftrace's start)`);
	t.match(runq.stdout, new RegExp(`^Tracing the run-queue latency of QEMU ${qemuPid}'s vCPU threads`, 'm'));
	const runqKeys = keyed(runq.stdout, 'runq_us');
	t.ok(runqKeys.length > 0 && ours(runqKeys), `a histogram per vCPU thread, keyed by its host thread id: ${JSON.stringify(runqKeys)}`);
	t.match(runq.stdout, /^\[\d+(, \d+[KM]?\))?\]? +\d+ \|@*/m, 'with buckets');
	t.match(runq.stdout, /^@waits_us\[CPU \d\/TCG, \d+, (woken|preempted)\]: count \d+, average \d+, total \d+$/m, 'and the waits by cause');
	t.notMatch(runq.stdout, /\n\n\n/, 'no run of blank lines');
	t.comment(runq.stdout);

	const preempt = await trace(['preempt', '--vm', String(qemuPid), '--duration', '2']);
	t.equal(preempt.exitCode, 0, `preempt --vm QEMU_PID: ${preempt.stderr}`);
	t.match(preempt.stdout, new RegExp(`^Tracing preemptions of QEMU ${qemuPid}'s vCPU threads`, 'm'));
	const byKeys = keyed(preempt.stdout, 'by');
	t.ok(ours(keyed(preempt.stdout, 'preempted_us')) && ours(byKeys), `whatever was preempted is one of its vCPU threads (${byKeys.length} preemptors)`);
	// The busy vCPU is usually preempted within 2 s on a host of 2 CPUs, but need not be.
	if (byKeys.length) t.match(preempt.stdout, /^@by\[CPU \d\/TCG, \d+, .+, \d+\]: count \d+, average \d+, total \d+$/m, 'who took the CPU: comm and tid');
	else t.comment(`no preemption in 2 s:\n${preempt.stdout}`);

	const hint = await trace(['hint-delay', '--vm', id, '--duration', '4']);
	t.equal(hint.exitCode, 0, `hint-delay --vm ID: ${hint.stderr}`);
	t.match(hint.stdout, new RegExp(`^Tracing re-pins of QEMU ${qemuPid}'s vCPU threads by process ${pvrunPid},`, 'm'), "pvrun's re-pins only");
	const repins = [
		...hint.stdout.matchAll(
			/^@repins_us\[CPU (\d)\/TCG, (\d+), (setaffinity|cpuset\+setaffinity), (running-there|running-elsewhere|runnable|sleeping)\]: count (\d+)/gm,
		),
	];
	t.ok(
		repins.some((m) => Number(m[1]) === 1 && Number(m[2]) === threads[1] && Number(m[5]) >= 1),
		`vCPU 1's thread re-pinned and run on its new CPU (the guest pins every 2 s): ${repins.map((m) => m[0]).join('; ')}`,
	);
	t.ok(ours(keyed(hint.stdout, 'hint_to_run_us')) && keyed(hint.stdout, 'hint_to_run_us').length > 0, 'a histogram of the delays per vCPU thread');
	t.comment(hint.stdout);

	// Failures: one line each, the project's exit statuses.
	const unknown = await trace(['nosuch']);
	t.equal(unknown.exitCode, 2, 'an unknown script: a usage error');
	t.match(unknown.stderr, /^pvrun: no trace script "nosuch": hint-delay, preempt, runqlat \(pvrun trace lists them\)\n?$/);
	const noVm = await trace(['runqlat', '--vm', 'nosuch']);
	t.equal(noVm.exitCode, 1);
	t.match(noVm.stderr, /^pvrun: no pvrun VM is "nosuch" \(looked in [^\n]+\)\n?$/, 'a VM that is not there: one line');
	// Without the test runner's preloads (NODE_OPTIONS, which it adds to what its tests start), as pvrunCommand does.
	const bare = ['-u', 'NODE_OPTIONS'];
	const noBpftrace = await execa('/usr/bin/env', [...bare, process.execPath, mainJs, 'trace', 'runqlat', '--vm', String(qemuPid)], {
		env: {...env, PATH: '/nonexistent'},
		reject: false,
	});
	t.equal(noBpftrace.exitCode, 1);
	t.equal(noBpftrace.stderr, 'pvrun: bpftrace is not installed: make setup installs it (or apt-get install bpftrace)', 'bpftrace missing: one line');
	if (process.getuid?.() === 0) {
		// As nobody, the VM's pid is a plain QEMU's (root's run directories are not for others to read); bpftrace refuses.
		const nobody = await execa(
			'/usr/bin/env',
			[...bare, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, mainJs, 'trace', 'runqlat', '--vm', String(qemuPid)],
			{env, reject: false, timeout: 30_000},
		);
		t.equal(nobody.exitCode, 1, 'not root');
		t.match(
			nobody.stderr,
			/^pvrun: bpftrace may not load BPF programs here \([^\n]*root[^\n]*\): run pvrun trace as root[^\n]*$/,
			`one line: ${nobody.stderr}`,
		);
	}
});
