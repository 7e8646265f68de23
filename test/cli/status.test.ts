// `pvrun status`: the table, and the built CLI's output over fake run
// directories in a private TMPDIR (the state files: test/vm/state.test.ts).
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {formatCs, formatPlacement, formatStatus, formatUptime} from '../../src/cli/status.js';
import {pvrunCommand} from '../../src/guest/boot.js';
import {writeVmState} from '../../src/vm/state.js';
import {deadPid, fakeRoot, runDir, validState, writeJson} from '../helpers/run-dirs.js';

const [node = 'node', ...cli] = pvrunCommand();

t.test('the status table', async (t) => {
	t.equal(
		formatPlacement([
			{vcpu: 1, cpus: [0, 1], exclusive: false},
			{vcpu: 0, cpus: [1], exclusive: true},
		]),
		'0→1 excl, 1→0-1',
	);
	t.equal(formatStatus([], '/tmp'), 'no pvrun VMs running (looked in /tmp)\n');
	const vm = {
		...validState('pvrun-10-ab', 10, {
			qemuPid: 11,
			name: 'web',
			placement: [{vcpu: 0, cpus: [2, 3], exclusive: false}],
			hints: {state: 'active', types: ['affinity', 'cs']},
		}),
		cs: {
			vcpus: [
				{vcpu: 0, csMs: 1200, csPreemptedMs: 300, preemptedMs: 500},
				{vcpu: 1, csMs: 0, csPreemptedMs: 0, preemptedMs: 0},
			],
			cells: 1,
			at: '2026-12-04T10:00:00.000Z',
		},
		runDir: '/tmp/pvrun-10-ab',
		qemuRunning: true,
		state: 'running' as const,
		uptimeSeconds: 3725,
	};
	const other = {
		...validState('pvrun-200-cd', 200, {qemuPid: 201, log: '/var/log/pv.jsonl', hints: {state: 'inactive', reason: 'no agent'}}),
		runDir: '/tmp/pvrun-200-cd',
		qemuRunning: false,
		state: 'exited' as const,
		uptimeSeconds: 45,
	};
	t.equal(
		formatStatus([vm, other], '/tmp'),
		[
			'PVRUN  QEMU  NAME  STATE    UPTIME  LOG                HINTS                  CS IN/PREEMPTED      vCPU→CPU',
			'10     11    web   running  1h02m   -                  active (affinity, cs)  0:1.2s/0.3s 1:0s/0s  0→2-3',
			'200    201   -     exited   45s     /var/log/pv.jsonl  inactive (no agent)    -                    not known yet',
			'',
		].join('\n'),
	);
});

t.test('formatUptime: the two largest units', async (t) => {
	for (const [s, text] of [
		[0, '0s'],
		[59.9, '59s'],
		[60, '1m00s'],
		[725, '12m05s'],
		[3600, '1h00m'],
		[10_920, '3h02m'],
		[86_400, '1d00h'],
		[187_200, '2d04h'],
		[-5, '0s'],
	] as const)
		t.equal(formatUptime(s), text, `${s} s`);
});

t.test('formatCs: acting adds boosts, budget left and payback owed per vCPU', async (t) => {
	t.equal(
		formatCs({
			vcpus: [
				{vcpu: 0, csMs: 1200, csPreemptedMs: 300, preemptedMs: 500, act: {boosts: 12, boostedUs: 8000, budgetUs: 9800, debtUs: 2000, paidUs: 14000}},
				{vcpu: 1, csMs: 0, csPreemptedMs: 0, preemptedMs: 0, act: {boosts: 0, boostedUs: 0, budgetUs: 10000, debtUs: 0, paidUs: 0}},
			],
			cells: 1,
			at: '2026-12-04T10:00:00.000Z',
		}),
		'0:1.2s/0.3s [12x 8.0ms, left 9.8ms, owed 2.0ms] 1:0s/0s [0x 0.0ms, left 10.0ms, owed 0.0ms]',
	);
});

t.test('pvrun status and pvrun status --json (built CLI, TMPDIR as the root)', async (t) => {
	const root = fakeRoot(t);
	const live = runDir(root, process.pid, 'feed01');
	writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: ['-name', 'cli-vm']}, {}, {qemuPid: process.pid});
	const gone = runDir(root, deadPid, 'dead02');
	writeJson(gone.runDir, validState(gone.id, deadPid));
	const env = {...process.env, TMPDIR: root};
	const json = await execa(node, [...cli, 'status', '--json'], {reject: false, env});
	t.equal(json.exitCode, 0, json.stderr);
	const parsed = JSON.parse(json.stdout) as {vms: Array<{name?: string; pvrunPid: number}>; skipped: Array<{dir: string}>};
	t.same(
		parsed.vms.map((v) => [v.name, v.pvrunPid]),
		[['cli-vm', process.pid]],
	);
	t.same(
		parsed.skipped.map((s) => s.dir),
		[gone.runDir],
	);
	const text = await execa(node, [...cli, 'status'], {reject: false, env});
	t.equal(text.exitCode, 0, text.stderr);
	t.match(text.stdout, new RegExp(`^PVRUN .*\\n${process.pid} +${process.pid} +cli-vm +starting +\\d+s +- +- +- +not known yet$`));
	t.equal(text.stderr, `pvrun: skipped ${gone.runDir}: pvrun ${deadPid} is not running: left over from a pvrun that was killed (safe to remove)`);
	const empty = await execa(node, [...cli, 'status'], {reject: false, env: {...process.env, TMPDIR: fakeRoot(t)}});
	t.match(empty.stdout, /^no pvrun VMs running \(looked in .*pvrun-status-test-/);
	const bad = await execa(node, [...cli, 'status', '--frobnicate'], {reject: false, env});
	t.equal(bad.exitCode, 2);
	t.equal(bad.stderr.split('\n').length, 1, bad.stderr);
});
