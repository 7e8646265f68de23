// `pvrun demo`, the main job of `make demo`, as a user runs it: one real guest
// booted through pvrun, the table of what the host did, and nothing left behind.
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {pvrunCommand} from '../../src/guest/boot.js';
import {privateTmpdir} from '../helpers/run-dirs.js';

const [node = 'node', ...cli] = pvrunCommand();

t.test('pvrun demo: vCPU 1 gets a CPU of its own while the guest asks, and floats again', async (t) => {
	t.setTimeout(150_000);
	const {tmp, env, seen} = privateTmpdir(t, 'pvrun-demo-test-');
	const started = performance.now();
	const run = await execa(node, [...cli, 'demo'], {reject: false, timeout: 140_000, stdin: 'ignore', env});
	const runs = seen();
	t.comment(`pvrun demo: ${((performance.now() - started) / 1000).toFixed(1)} s`);
	t.equal(run.exitCode, 0, `exit 0 (stderr: ${run.stderr.split('\n').slice(-3).join(' | ')})`);
	const rows = run.stdout.split('\n').filter((l) => /^ {2} {3}\d {2} +\d+ {3}/.test(l));
	t.equal(rows.length, 2, `one table row per vCPU:\n${run.stdout}`);
	// The row of vCPU 1: before and after a list of CPUs, during a single one.
	const [, , before, during, after] = (rows[1] ?? '').trim().split(/\s+/);
	t.match(before, /[,-]/, 'vCPU 1 floated on several CPUs before');
	t.match(during, /^\d+$/, 'vCPU 1 had one CPU while the guest process was pinned');
	t.match(after, /[,-]/, 'and several again afterwards');
	t.match(run.stdout, /ms {2}affinity BPF program pushed to the guest agent and attached \(\d+ ms\)/, 'the program load is among the decisions');
	t.match(run.stdout, /ms {2}vCPU 1 -> CPU \d+ exclusive, for guest thread \d+ \(\S+\)/, 'so is the pin');
	t.match(run.stdout, /\d+ hints: p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms/, 'the round trip was measured in the guest');
	t.match(run.stdout, /host side \(record visible -> affinity applied\): p50 \d+ µs/, 'and on the host');
	t.match(run.stderr, /done: vCPU 1 had a CPU of its own while the guest asked for it, and floated again after/);
	t.ok(runs.length > 0, `its run directory was seen (${runs.join(', ')})`);
	t.same(fs.readdirSync(tmp), [], 'no run or work directory left');
	t.same(
		runs.filter((name) => fs.existsSync(path.join('/dev/shm', name))),
		[],
		'no shared-memory file left',
	);
});
