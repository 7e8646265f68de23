// What a missed deadline reports of a process's threads and its children's, with real processes.
import {spawn} from 'node:child_process';
import t from 'tap';
import {formatCpuList, ownCpus} from '../../src/host/cpus.js';
import {threadsReport} from '../../src/host/threads-report.js';

t.test('a process spinning in one thread, with a sleeping child: each thread, its share, its CPUs', async (t) => {
	// A shell that starts a sleeping child, then spins.
	const busy = spawn('bash', ['-c', 'sleep 30 & while :; do :; done'], {stdio: 'ignore'});
	t.teardown(() => void busy.kill('SIGKILL'));
	const pid = busy.pid ?? 0;
	await new Promise((resolve) => setTimeout(resolve, 300));
	const report = await threadsReport(pid, 500);
	const lines = report.split('\n');
	t.match(lines[0], /^host over 0\.\d s: load [\d.]+ [\d.]+ [\d.]+, steal \d+ %$/, 'the machine first');
	const own = lines.find((l) => l.startsWith(`${pid}: `)) ?? '';
	// Ran, or waited to run: beside the rest of the suite on 2 CPUs it may get well under half.
	const [share = -1, waited = -1] = (/^\d+: bash R (\d+)% \(waited (\d+)%\)/.exec(own) ?? []).slice(1).map(Number);
	t.ok(share > 0 && share + waited >= 80, `the spinning shell wanted a CPU all the time, ran or waiting: ${own}`);
	t.match(own, ` on ${formatCpuList(ownCpus())}`, 'on the CPUs it may use');
	const child = lines.find((l) => / sleep S 0% /.test(`${l} `));
	t.ok(child, `its child, asleep: ${report}`);
	t.match(child, / sleep S 0% (\(waited 0%\) )?in \w*sleep\w* on /, 'where the child sleeps in the kernel');
	t.notMatch(own, / bash R [^;]* in /, 'no wait channel for a running thread');
	t.notMatch(report, /FIFO|RR/, 'no real-time policy shown where there is none');
});

t.test('a process that is gone: nothing', async (t) => {
	const gone = spawn('true');
	await new Promise((resolve) => gone.once('exit', resolve));
	t.equal(await threadsReport(gone.pid ?? 0, 10), '');
});
