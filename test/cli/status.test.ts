// `pvrun status`: the table, and the built CLI's output over fake run
// directories in private runtime roots (the state files: test/vm/state.test.ts).
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {assertStatusValid} from '../helpers/status-schema.js';
import {formatCs, formatHints, formatLeases, formatPlacement, formatStatus, formatUptime, userNames} from '../../src/cli/status.js';
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
	t.equal(formatStatus([], ['/run/pvrun']), 'no pvrun VMs running (looked in /run/pvrun)\n');
	t.equal(formatStatus([], ['/run/pvrun', '/tmp/pvrun-1000']), 'no pvrun VMs running (looked in /run/pvrun, /tmp/pvrun-1000)\n');
	const vm = {
		...validState('pvrun-10-ab', 10, {
			qemuPid: 11,
			name: 'web',
			placement: [{vcpu: 0, cpus: [2, 3], exclusive: false}],
			hints: {state: 'active', types: ['affinity', 'cs']},
			activity: {records: 1200, pins: 14, floats: 13, denies: 0, recent: []},
		}),
		cs: {
			vcpus: [
				{vcpu: 0, csMs: 1200, csPreemptedMs: 300, preemptedMs: 500},
				{vcpu: 1, csMs: 0, csPreemptedMs: 0, preemptedMs: 0},
			],
			cells: 1,
			at: '2026-12-04T10:00:00.000Z',
		},
		runDir: '/run/pvrun/pvrun-10-ab',
		uid: 0,
		qemuRunning: true,
		state: 'running' as const,
		uptimeSeconds: 3725,
		leases: [{cpu: 3, vcpu: 0, since: 1}],
	};
	const other = {
		...validState('pvrun-200-cd', 200, {qemuPid: 201, log: '/var/log/pv.jsonl', hints: {state: 'inactive', reason: 'no agent'}}),
		runDir: '/tmp/pvrun-1000/pvrun-200-cd',
		uid: 1000,
		qemuRunning: false,
		state: 'exited' as const,
		uptimeSeconds: 45,
		leaseWaitingSince: 5,
	};
	t.equal(
		formatStatus([vm, other], ['/run/pvrun']),
		[
			'PVRUN  QEMU  NAME  STATE    UPTIME  LOG                HINTS                  RECORDS/PINS  CS IN/PREEMPTED      LEASES      vCPU→CPU',
			'10     11    web   running  1h02m   -                  active (affinity, cs)  1200/14       0:1.2s/0.3s 1:0s/0s  3 (vCPU 0)  0→2-3',
			'200    201   -     exited   45s     /var/log/pv.jsonl  inactive (no agent)    -             -                    waiting     not known yet',
			'',
		].join('\n'),
	);
	t.equal(
		formatStatus([vm, other], ['/run/pvrun', '/tmp/pvrun-1000'], new Map([[0, 'root']])),
		[
			'USER  PVRUN  QEMU  NAME  STATE    UPTIME  LOG                HINTS                  RECORDS/PINS  CS IN/PREEMPTED      LEASES      vCPU→CPU',
			'root  10     11    web   running  1h02m   -                  active (affinity, cs)  1200/14       0:1.2s/0.3s 1:0s/0s  3 (vCPU 0)  0→2-3',
			'1000  200    201   -     exited   45s     /var/log/pv.jsonl  inactive (no agent)    -             -                    waiting     not known yet',
			'',
		].join('\n'),
		"--all: each VM's user first (the uid where it has no name)",
	);
});

t.test('formatLeases: the CPUs leased, and whether the VM waits for one', async (t) => {
	t.equal(formatLeases({}), '-');
	t.equal(
		formatLeases({
			leases: [
				{cpu: 1, vcpu: 0, since: 1},
				{cpu: 3, vcpu: 2, since: 2},
			],
			leaseWaitingSince: 9,
		}),
		'1 (vCPU 0), 3 (vCPU 2) waiting',
	);
});

t.test('userNames: uid → name from a passwd file, the first line of each uid', async (t) => {
	const file = path.join(fakeRoot(t), 'passwd');
	fs.writeFileSync(file, 'root:x:0:0:root:/root:/bin/bash\nbad line\nalias:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n:x:7:7::/:\n');
	t.same(
		[...userNames(file)],
		[
			[0, 'root'],
			[65534, 'nobody'],
		],
	);
	t.same([...userNames(path.join(file, 'missing'))], [], 'none when it cannot be read');
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

t.test('pvrun status and pvrun status --json (built CLI, PVRUN_RUNTIME_DIR as the root)', async (t) => {
	const root = fakeRoot(t);
	const live = runDir(root, process.pid, 'feed01');
	writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: ['-name', 'cli-vm']}, {}, {qemuPid: process.pid});
	const gone = runDir(root, deadPid, 'dead02');
	writeJson(gone.runDir, validState(gone.id, deadPid));
	const env = {...process.env, PVRUN_RUNTIME_DIR: root};
	const json = await execa(node, [...cli, 'status', '--json'], {reject: false, env});
	t.equal(json.exitCode, 0, json.stderr);
	assertStatusValid(t, json.stdout);
	const parsed = JSON.parse(json.stdout) as {vms: Array<{name?: string; pvrunPid: number; uid: number}>; skipped: Array<{dir: string}>};
	t.same(
		parsed.vms.map((v) => [v.name, v.pvrunPid, v.uid]),
		[['cli-vm', process.pid, process.getuid?.()]],
	);
	t.same(
		parsed.skipped.map((s) => s.dir),
		[gone.runDir],
	);
	const text = await execa(node, [...cli, 'status'], {reject: false, env});
	t.equal(text.exitCode, 0, text.stderr);
	t.match(text.stdout, new RegExp(`^PVRUN .*\\n${process.pid} +${process.pid} +cli-vm +starting +\\d+s +- +- +- +- +- +not known yet$`));
	t.equal(text.stderr, `pvrun: skipped ${gone.runDir}: pvrun ${deadPid} is not running: left over from a pvrun that was killed (safe to remove)`);
	const fresh = path.join(fakeRoot(t), 'not-made-yet');
	const empty = await execa(node, [...cli, 'status'], {reject: false, env: {...process.env, PVRUN_RUNTIME_DIR: fresh}});
	t.same(
		[empty.exitCode, empty.stdout, empty.stderr],
		[0, `no pvrun VMs running (looked in ${fresh})`, ''],
		'a runtime root not made yet: no VMs, nothing skipped',
	);
	t.notOk(fs.existsSync(fresh), 'and status does not make it');
	const bad = await execa(node, [...cli, 'status', '--frobnicate'], {reject: false, env});
	t.equal(bad.exitCode, 2);
	t.equal(bad.stderr.split('\n').length, 1, bad.stderr);
});

t.test(
	"pvrun status --all: every user's runtime root it can read; the others skipped, saying why",
	{skip: process.getuid?.() !== 0 && 'needs root (to act as another user)'},
	async (t) => {
		const own = fakeRoot(t);
		const live = runDir(own, process.pid, 'feed03');
		writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: ['-name', 'own-vm']}, {}, {qemuPid: process.pid});
		// A TMPDIR others may list, with the <tmpdir>/pvrun-<uid> root of a user without XDG_RUNTIME_DIR: root's here.
		const tmp = fakeRoot(t);
		fs.chmodSync(tmp, 0o755);
		const theirs = path.join(tmp, 'pvrun-0');
		fs.mkdirSync(theirs, {mode: 0o700});
		const other = runDir(theirs, process.pid, 'feed04');
		writeVmState({...other, qmpSocket: path.join(other.runDir, 'qmp.sock'), args: ['-name', 'other-vm']}, {}, {qemuPid: process.pid});
		fs.mkdirSync(path.join(tmp, 'pvrun-x'), {mode: 0o700}); // not a runtime root's name
		const env = {...process.env, TMPDIR: tmp, PVRUN_RUNTIME_DIR: own};

		const mine = await execa(node, [...cli, 'status', '--json'], {reject: false, env});
		t.same(
			(JSON.parse(mine.stdout) as {vms: Array<{name?: string}>}).vms.map((v) => v.name),
			['own-vm'],
			"without --all: the caller's root alone",
		);
		const all = await execa(node, [...cli, 'status', '--all', '--json'], {reject: false, env});
		t.equal(all.exitCode, 0, all.stderr);
		const names = (JSON.parse(all.stdout) as {vms: Array<{name?: string; runDir: string}>}).vms.filter(
			(v) => v.runDir.startsWith(own) || v.runDir.startsWith(tmp),
		);
		t.same(names.map((v) => v.name).sort(), ['other-vm', 'own-vm'], "--all: the caller's and the other root's");
		const table = await execa(node, [...cli, 'status', '--all'], {reject: false, env});
		t.match(table.stdout, /^USER +PVRUN +QEMU +NAME/, 'the table begins with USER');
		t.match(table.stdout, new RegExp(`\\nroot +${process.pid} +${process.pid} +other-vm `), "each VM's user");

		// As nobody: the caller's own root (none yet), root's not readable, which is said on stderr.
		const asNobody = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', node, ...cli, 'status', '--all'], {
			reject: false,
			env: {...process.env, TMPDIR: tmp, PVRUN_RUNTIME_DIR: ''},
		});
		t.equal(asNobody.exitCode, 0, asNobody.stderr);
		t.match(asNobody.stdout, new RegExp(`^no pvrun VMs running \\(looked in .*${tmp}/pvrun-0, ${tmp}/pvrun-65534\\)$`), 'no VM of its own');
		t.match(asNobody.stderr, `pvrun: skipped ${theirs}: cannot list it: EACCES`, "another user's root: skipped, saying why");
	},
);

t.test('the HINTS column: active since when, or why not', async (t) => {
	const at = new Date(2026, 11, 6, 4, 40, 12).getTime(); // local time, as the column shows it
	t.equal(formatHints({state: 'active', since: at, types: ['affinity']}), 'active since 04:40:12 (affinity)');
	t.equal(formatHints({state: 'active'}), 'active', 'from a pvrun that did not say since when');
	t.equal(formatHints({state: 'waiting', reason: 'no guest agent has answered yet'}), 'waiting (no guest agent has answered yet)');
	t.equal(formatHints({state: 'inactive', reason: 'no agent', since: at}), 'inactive (no agent)', 'since is only for active hints');
});
