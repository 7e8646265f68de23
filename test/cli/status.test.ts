// `pvrun status`: the state files pvrun writes into its run directories, read
// back from fake run directories in a private root, and the command's output.
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import {pvrunCommand} from '../../src/guest/boot.js';
import t, {type Test} from 'tap';
import {formatPlacement, formatStatus} from '../../src/cli/status.js';
import {processStartTicks} from '../../src/host/proc.js';
import {parseVmState, readVmStates, updateHints, updatePlacement, vmOfQemu, writeVmState, type VmState} from '../../src/vm/state.js';

const [node = 'node', ...cli] = pvrunCommand();

/** A pid that is not running: a child that has exited and been reaped. */
const deadPid = spawnSync('true').pid ?? 0;

function fakeRoot(t: Pick<Test, 'teardown'>): string {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-status-test-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	return root;
}

function runDir(root: string, pid: number, hex: string): {id: string; runDir: string} {
	const id = `pvrun-${pid}-${hex}`;
	const dir = path.join(root, id);
	fs.mkdirSync(dir, {mode: 0o700});
	return {id, runDir: dir};
}

function validState(id: string, pid: number, extra: Partial<VmState> = {}): VmState {
	return {version: 1, id, pvrunPid: pid, qemuPid: pid, qmpSocket: `/tmp/${id}/qmp.sock`, startedAt: '2025-01-01T00:00:00.000Z', ...extra};
}

function writeJson(dir: string, data: unknown): void {
	fs.writeFileSync(path.join(dir, 'state.json'), typeof data === 'string' ? data : JSON.stringify(data));
}

t.test('the state file pvrun writes is read back; everything else is skipped with a reason', async (t) => {
	const root = fakeRoot(t);
	// The running VM: this test process stands in for pvrun, a child that lives for QEMU.
	const live = runDir(root, process.pid, 'a1b2c3');
	const qemu = spawnSync('sh', ['-c', 'echo $$']).pid ?? 0; // exited: QEMU gone, pvrun still there
	writeVmState(
		{...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: ['-m', '512', '-name', 'guest=web,,1,debug-threads=on', '-name', 'debug-threads=on']},
		{log: 'events.jsonl'},
		{qemuPid: qemu},
	);
	t.same(fs.readdirSync(live.runDir), ['state.json'], 'written through a temporary file that is gone');
	t.equal(fs.statSync(path.join(live.runDir, 'state.json')).mode & 0o777, 0o600);

	const gone = runDir(root, deadPid, 'dead01');
	writeJson(gone.runDir, validState(gone.id, deadPid));
	runDir(root, process.pid, 'c0ffee'); // no state.json yet
	writeJson(runDir(root, process.pid, 'bad001').runDir, '{"version":1,');
	const wrongPid = runDir(root, process.pid, 'bad002');
	writeJson(wrongPid.runDir, validState(wrongPid.id, 1));
	const reused = runDir(root, process.pid, 'bad003');
	writeJson(reused.runDir, validState(reused.id, process.pid, {pvrunStart: (processStartTicks(process.pid) ?? 0) + 1, qemuPid: deadPid}));
	// The helper killed, its QEMU running on (the directory is named after QEMU's pid).
	const orphan = runDir(root, process.pid, 'bad007');
	writeJson(orphan.runDir, validState(orphan.id, deadPid, {qemuPid: process.pid}));
	const escapes = runDir(root, process.pid, 'bad004');
	writeJson(escapes.runDir, validState(escapes.id, process.pid, {name: 'evil\u001b[2Jname'}));
	const linked = runDir(root, process.pid, 'bad005');
	fs.symlinkSync(path.join(live.runDir, 'state.json'), path.join(linked.runDir, 'state.json'));
	const huge = runDir(root, process.pid, 'bad006');
	writeJson(huge.runDir, JSON.stringify(validState(huge.id, process.pid)).padEnd(300_000));
	// Not run directories: a symbolic link, a file, other tools' directories.
	fs.symlinkSync(live.runDir, path.join(root, `pvrun-${process.pid}-ffff01`));
	fs.writeFileSync(path.join(root, `pvrun-${process.pid}-ffff02`), '');
	fs.mkdirSync(path.join(root, 'pvrun-e2e-abc'));
	fs.mkdirSync(path.join(root, 'pvrun-status-x'));

	const {vms, skipped} = readVmStates(root);
	t.equal(vms.length, 1, 'one VM');
	const vm = vms[0];
	t.match(vm, {
		id: live.id,
		runDir: live.runDir,
		pvrunPid: process.pid,
		qemuPid: qemu,
		qemuRunning: false,
		name: 'web,1',
		log: path.resolve('events.jsonl'),
		pvrunStart: processStartTicks(process.pid),
	});
	t.equal(vm?.placement, undefined);
	const reasons = new Map(skipped.map((s) => [path.basename(s.dir), s.reason]));
	t.same(
		[...reasons.keys()].sort(),
		[gone.id, `pvrun-${process.pid}-c0ffee`, `pvrun-${process.pid}-bad001`, wrongPid.id, reused.id, orphan.id, escapes.id, linked.id, huge.id].sort(),
		'the skipped directories, and only those',
	);
	t.match(reasons.get(gone.id), new RegExp(`pvrun ${deadPid} is not running: left over`));
	t.match(reasons.get(`pvrun-${process.pid}-c0ffee`), /no state.json yet/);
	t.match(reasons.get(`pvrun-${process.pid}-bad001`), /not a valid pvrun state file/);
	t.match(reasons.get(wrongPid.id), /neither its pvrun pid 1 nor its QEMU pid 1 is the one in the directory's name/);
	t.match(reasons.get(orphan.id), new RegExp(`pvrun ${deadPid} is gone \\(killed\\): QEMU ${process.pid} runs on without hints`));
	t.match(reasons.get(reused.id), /is not running/, 'a reused pid is not the pvrun that wrote the file');
	t.match(reasons.get(escapes.id), /name is not a one-line string/);
	t.match(reasons.get(linked.id), /state.json is a symbolic link/, 'a symbolic link is not followed');
	t.match(reasons.get(huge.id), /too large/);
});

t.test('updatePlacement publishes the vCPU placement; bad input and a vanished VM are refused', async (t) => {
	const root = fakeRoot(t);
	const live = runDir(root, process.pid, '0a0b0c');
	writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: []}, {}, {qemuPid: process.pid});
	t.ok(
		updatePlacement(live.runDir, [
			{vcpu: 1, cpus: [0, 1], exclusive: false},
			{vcpu: 0, cpus: [1], exclusive: true},
		]),
	);
	t.ok(updateHints(live.runDir, {state: 'inactive', reason: 'no guest agent answered within 60 s of guest time'}));
	t.same(
		readVmStates(root).vms[0]?.hints,
		{state: 'inactive', reason: 'no guest agent answered within 60 s of guest time'},
		'the hints state is published beside the placement',
	);
	t.throws(() => parseVmState({...validState('pvrun-1-aa', 1), hints: {state: 'on'}}), /hints.state is not waiting, active or inactive/);
	const [vm] = readVmStates(root).vms;
	t.same(vm?.placement, [
		{vcpu: 1, cpus: [0, 1], exclusive: false},
		{vcpu: 0, cpus: [1], exclusive: true},
	]);
	t.ok(vm?.placementAt && !Number.isNaN(Date.parse(vm.placementAt)));
	t.equal(vm?.name, undefined, 'no -name, no name');
	t.notOk(updatePlacement(live.runDir, [{vcpu: 0, cpus: [-1], exclusive: false}]), 'CPU -1 is refused');
	t.same(readVmStates(root).vms[0]?.placement, vm?.placement, 'a refused update leaves the file as it was');
	t.same(fs.readdirSync(live.runDir), ['state.json'], 'no temporary files left');
	fs.rmSync(live.runDir, {recursive: true});
	t.notOk(updatePlacement(live.runDir, []), 'the VM ended: false, no throw');
});

t.test('state files are checked field by field', async (t) => {
	const ok = validState('pvrun-1-ab', 1);
	t.same(parseVmState(ok), ok);
	t.throws(() => parseVmState([]), /not a JSON object/);
	t.throws(() => parseVmState({...ok, version: 2}), /version 2 is not 1/);
	t.throws(() => parseVmState({...ok, qemuPid: 0}), /qemuPid is not an integer >= 1/);
	t.throws(() => parseVmState({...ok, pvrunPid: '1'}), /pvrunPid/);
	t.throws(() => parseVmState({...ok, startedAt: 'yesterday'}), /startedAt is not a date/);
	t.throws(() => parseVmState({...ok, log: 42}), /log is not a one-line string/);
	t.throws(() => parseVmState({...ok, placement: {}}), /placement is not a list/);
	t.throws(() => parseVmState({...ok, placement: [{vcpu: 0, cpus: [0], exclusive: 'yes'}]}), /placement\[0\]\.exclusive/);
	t.throws(() => parseVmState({...ok, placement: [{vcpu: 0, cpus: [99999], exclusive: true}]}), /placement\[0\]\.cpus/);
	t.throws(() => parseVmState({...ok, placement: [{vcpu: -1, cpus: [0], exclusive: true}]}), /placement\[0\]\.vcpu/);
});

t.test("a VM found by its QEMU's pid (the pid a launcher started: pvrun exec'd QEMU)", async (t) => {
	const root = fakeRoot(t);
	const qemu = spawnSync('sh', ['-c', 'echo $$']).pid ?? 0;
	const live = runDir(root, qemu, 'a0a0a0');
	writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: []}, {}, {qemuPid: qemu, pvrunPid: process.pid});
	t.equal(vmOfQemu(qemu, root)?.pvrunPid, process.pid, "its helper's pid, for what measures pvrun itself (pvrun bench hint-latency's idle CPU)");
	t.equal(vmOfQemu(qemu + 1, root), undefined);
});

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
		...validState('pvrun-10-ab', 10, {qemuPid: 11, name: 'web', placement: [{vcpu: 0, cpus: [2, 3], exclusive: false}], hints: {state: 'active'}}),
		runDir: '/tmp/pvrun-10-ab',
		qemuRunning: true,
	};
	const other = {
		...validState('pvrun-200-cd', 200, {qemuPid: 201, log: '/var/log/pv.jsonl', hints: {state: 'inactive', reason: 'no agent'}}),
		runDir: '/tmp/pvrun-200-cd',
		qemuRunning: false,
	};
	t.equal(
		formatStatus([vm, other], '/tmp'),
		[
			'PVRUN  QEMU          NAME  LOG                HINTS                vCPU→CPU',
			'10     11            web   -                  active               0→2-3',
			'200    201 (exited)  -     /var/log/pv.jsonl  inactive (no agent)  not known yet',
			'',
		].join('\n'),
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
	t.match(text.stdout, new RegExp(`^PVRUN .*\\n${process.pid} +${process.pid} +cli-vm +- +- +not known yet$`));
	t.equal(text.stderr, `pvrun: skipped ${gone.runDir}: pvrun ${deadPid} is not running: left over from a pvrun that was killed (safe to remove)`);
	const empty = await execa(node, [...cli, 'status'], {reject: false, env: {...process.env, TMPDIR: fakeRoot(t)}});
	t.match(empty.stdout, /^no pvrun VMs running \(looked in .*pvrun-status-test-/);
	const bad = await execa(node, [...cli, 'status', '--frobnicate'], {reject: false, env});
	t.equal(bad.exitCode, 2);
	t.equal(bad.stderr.split('\n').length, 1, bad.stderr);
});
