// native/pvprobe, the hint-latency benchmark's floor (a runnable thread moved
// onto an idle CPU): a real run on this host's CPUs gives one result line with
// one sample per move, and bad arguments get one line and exit status 2.
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {ownCpus} from '../../src/host/cpus.js';
import {packageRoot} from '../../src/util/paths.js';

const pvprobe = path.join(packageRoot, 'native', 'pvprobe');
const root = process.getuid?.() === 0;

t.test('twenty moves each way, from the lowest allowed CPU to the highest', {skip: ownCpus().length < 2 && 'needs two CPUs'}, async (t) => {
	const r = await execa(pvprobe, ['-n', '20', '-g', '500'], {reject: false, timeout: 20_000});
	if (!root) {
		t.equal(r.exitCode, 1, 'without SCHED_FIFO it cannot measure');
		t.match(r.stderr, /^pvprobe: needs SCHED_FIFO/);
		return;
	}
	t.equal(r.exitCode, 0);
	const lines = r.stdout.split('\n');
	t.equal(lines.length, 1, 'one line');
	t.ok(lines[0]?.startsWith('pvprobe-result '));
	const o = JSON.parse(lines[0]?.slice('pvprobe-result '.length) ?? '{}') as Record<string, unknown>;
	const cpus = ownCpus();
	t.match(o, {from: cpus[0], to: cpus.at(-1), gapUs: 500});
	for (const k of ['runnableToIdleUs', 'sleepingUs']) {
		const v = o[k];
		t.ok(Array.isArray(v) && v.length === 20 && v.every((x) => typeof x === 'number' && x > 0 && x < 1e6), `${k}: 20 positive samples`);
	}
});

t.test('bad arguments: one line, exit 2', async (t) => {
	for (const args of [['-n', '0'], ['-n', 'x'], ['-g', '-1'], ['extra'], ['-q']]) {
		const r = await execa(pvprobe, args, {reject: false});
		t.equal(r.exitCode, 2, `pvprobe ${args.join(' ')}`);
		t.equal(r.stdout, '');
		t.equal(r.stderr.trim().split('\n').length, 1, 'one line on stderr');
	}
});
