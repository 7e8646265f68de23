// The benchmark workloads are plain Linux programs: run each for a fraction of
// a second on the host and check its one result line, and that bad arguments
// get one line and exit status 2.
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {ownCpus} from '../../src/host/cpus.js';
import {packageRoot} from '../../src/util/paths.js';

const pvwork = path.join(packageRoot, 'guest-agent', 'pvwork');

/** Run pvwork; its one result line, parsed. */
async function result(args: string[]): Promise<Record<string, unknown>> {
	const r = await execa(pvwork, args, {timeout: 20_000});
	const lines = r.stdout.split('\n');
	if (lines.length !== 1 || !lines[0]?.startsWith('pvwork-result ')) throw new Error(`not one result line: ${r.stdout}`);
	return JSON.parse(lines[0].slice('pvwork-result '.length)) as Record<string, unknown>;
}

const positive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;

t.test('poll: a pinned worker', async (t) => {
	const r = await result(['poll', '-c', '0', '-s', '0.3', '-b', '1']);
	t.match(r, {workload: 'poll', cpu: 0, burners: 1});
	t.ok((r['seconds'] as number) >= 0.3 && (r['seconds'] as number) < 1, `-s takes a fraction of a second: ran ${String(r['seconds'])} s`);
	for (const k of ['seconds', 'iterations', 'iterPerSec', 'maxStallUs', 'burnerIterPerSec']) t.ok(positive(r[k]), `${k} > 0`);
	const rate = (r['iterations'] as number) / (r['seconds'] as number);
	t.ok(Math.abs(rate / (r['iterPerSec'] as number) - 1) < 0.002, 'the rate is iterations per second (seconds printed to 1 ms)');
});

t.test('without -b, no burners', async (t) => {
	t.match(await result(['poll', '-s', '0.2']), {burners: 0, burnerIterPerSec: 0});
});

t.test('pingpong: a token between two pinned threads', {skip: ownCpus().length < 2 && 'needs two CPUs'}, async (t) => {
	const [a = 0, b = 1] = ownCpus();
	const r = await result(['pingpong', '-a', String(a), '-c', String(b), '-s', '0.3', '-b', '1']);
	t.match(r, {workload: 'pingpong', cpus: [a, b], burners: 1});
	t.ok(positive(r['burnerIterPerSec']), 'the burners worked beside it');
	for (const k of ['roundTrips', 'roundTripsPerSec', 'p50Us', 'p99Us', 'maxUs']) t.ok(positive(r[k]), `${k} > 0`);
	t.ok((r['p50Us'] as number) <= (r['p99Us'] as number) && (r['p99Us'] as number) <= (r['maxUs'] as number), 'p50 <= p99 <= max');
});

t.test('sleeper: wake-up lateness', async (t) => {
	const r = await result(['sleeper', '-p', '2000', '-c', '0', '-s', '0.3', '-b', '1']);
	t.match(r, {workload: 'sleeper', cpu: 0, periodUs: 2000, wakeups: 150, burners: 1});
	t.ok(positive(r['burnerIterPerSec']), 'the burners worked beside it');
	t.ok((r['p50Us'] as number) >= 0 && (r['p50Us'] as number) <= (r['p99Us'] as number), 'p50 <= p99');
});

t.test('locks: threads contending on one mutex', async (t) => {
	const r = await result(['locks', '-t', '3', '-s', '0.3', '-b', '1']);
	t.match(r, {workload: 'locks', threads: 3, burners: 1});
	t.ok(positive(r['opsPerSec']));
});

t.test('uspin: threads on one lock, every lock and length asked for, one line', async (t) => {
	const r = await result(['uspin', '-t', '2', '-l', 'spin,mutex,pvcs,spin-cs', '-w', '1,10', '-s', '0.25']);
	t.match(r, {workload: 'uspin', threads: 2, pvcsActive: 0, burners: 0});
	const runs = r['runs'] as Array<Record<string, unknown>>;
	t.same(
		runs.map((x) => [x['lock'], x['workUs']]),
		[
			['spin', 1],
			['spin-cs', 1],
			['mutex', 1],
			['pvcs', 1],
			['spin', 10],
			['spin-cs', 10],
			['mutex', 10],
			['pvcs', 10],
		],
		'in the order of the locks, for each length',
	);
	for (const x of runs) {
		for (const k of ['ops', 'opsPerSec', 'sectionUs', 'maxWaitUs']) t.ok(positive(x[k]), `${String(x['lock'])} ${String(x['workUs'])} µs: ${k} > 0`);
		t.ok((x['p50WaitUs'] as number) <= (x['p99WaitUs'] as number) && (x['p99WaitUs'] as number) <= (x['maxWaitUs'] as number), 'p50 <= p99 <= max');
	}
	// Not under pvrun here: the pvcs lock works on a cell of its own.
	const ten = runs.filter((x) => x['workUs'] === 10).map((x) => x['sectionUs'] as number);
	const one = runs.filter((x) => x['workUs'] === 1).map((x) => x['sectionUs'] as number);
	t.ok(Math.min(...ten) > Math.max(...one), 'a longer section is longer, whatever the lock');
});

t.test('uspin: a holder that loses its CPU is counted as stalled, a parked waiter as parked', async (t) => {
	// Three threads on one host CPU: the host takes the CPU from holders in their sections
	// (its time slice is milliseconds), and pvcs waiters park after their spins.
	const cpu = ownCpus()[0] ?? 0;
	const r = await execa('taskset', ['-c', String(cpu), pvwork, 'uspin', '-t', '3', '-l', 'spin,pvcs', '-w', '10', '-s', '0.5'], {timeout: 20_000});
	const runs = (JSON.parse(r.stdout.slice('pvwork-result '.length)) as {runs: Array<Record<string, number>>}).runs;
	const [spin, pvcs] = runs;
	t.ok(spin && spin['stalls']! > 0, `spin: stalled sections counted (${String(spin?.['stalls'])})`);
	t.ok(
		spin && spin['stalledMsPerSec']! > 50 && spin['stalledMsPerSec']! <= 1000,
		`spin: the lock sat with a stalled holder 50–1000 ms/s (${String(spin?.['stalledMsPerSec'])})`,
	);
	t.equal(spin?.['parks'], 0, 'a spin lock never parks');
	t.ok(pvcs && pvcs['parks']! > 0, `pvcs: waiters parked (${String(pvcs?.['parks'])})`);
	const alone = await result(['uspin', '-t', '1', '-l', 'spin', '-w', '10', '-s', '0.3']);
	const one = (alone['runs'] as Array<Record<string, number>>)[0];
	// (The host may still preempt it for other work: a few stalls a time slice, not one a section.)
	t.ok(one && one['stalls']! < one['ops']! / 100, `one thread: its sections do not count as stalled (${String(one?.['stalls'])} of ${String(one?.['ops'])})`);
});

t.test('klock: threads mapping and unmapping memory', async (t) => {
	const r = await result(['klock', '-t', '2', '-s', '0.3']);
	t.match(r, {workload: 'klock', threads: 2});
	t.ok(positive(r['opsPerSec']));
});

t.test('bad arguments: one line, exit 2', async (t) => {
	for (const args of [
		[],
		['nope'],
		['poll', '-c', '4096'],
		['poll', '-s', '0'],
		['poll', '-s', '0.05'],
		['poll', '-s', '1s'],
		['poll', '-s', 'nan'],
		['poll', '-s', '3601'],
		['pingpong', '-a', '0', '-c', '0'],
		['sleeper', '-p', '10'],
		['sleeper', '-p', '50', '-s', '3600'],
		['locks', 'extra'],
		['poll', '-b', '65'],
		['uspin', '-l', 'ticket'],
		['uspin', '-l', ','],
		['uspin', '-w', '1,x'],
		['uspin', '-w', '1,2,3,4,5,6,7,8,9'],
		['klock', '-t', '0'],
	]) {
		const r = await execa(pvwork, args, {reject: false, timeout: 5000});
		t.equal(r.exitCode, 2, `pvwork ${args.join(' ')}`);
		t.equal(r.stdout, '', 'no result line');
		t.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr');
	}
});
