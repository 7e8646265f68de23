// src/vm/state.ts: the state file pvrun writes into its run directory, read
// back from fake run directories in a private root; what is skipped and why.
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {processStartTicks} from '../../src/host/proc.js';
import {
	isVmNamed,
	parseVmState,
	readVmStates,
	updateCs,
	updateGuest,
	updateHints,
	updatePlacement,
	vmOfQemu,
	writeVmState,
	type HintActivity,
} from '../../src/vm/state.js';
import {deadPid, fakeRoot, runDir, validState, writeJson} from '../helpers/run-dirs.js';

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
	t.equal(vm?.state, 'exited', 'its QEMU is not running: exited');
	t.ok(vm !== undefined && vm.uptimeSeconds >= 0 && vm.uptimeSeconds < 60, `uptime from startedAt (${vm?.uptimeSeconds} s)`);
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
	t.ok(updateHints(live.runDir, {state: 'active', types: ['affinity', 'cs']}));
	t.same(readVmStates(root).vms[0]?.hints, {state: 'active', types: ['affinity', 'cs']}, 'the hint types the agent attached');
	t.ok(updateHints(live.runDir, {state: 'active', since: 1_796_000_000_000}));
	t.same(readVmStates(root).vms[0]?.hints, {state: 'active', since: 1_796_000_000_000}, 'since when they are active');
	t.throws(() => parseVmState({...validState('pvrun-1-aa', 1), hints: {state: 'active', since: -1}}), /hints.since is not an integer >= 0/);
	t.throws(
		() => parseVmState({...validState('pvrun-1-aa', 1), hints: {state: 'active', types: ['\u001b[31m']}}),
		/hints.types is not a list of hint type names/,
	);
	const cs = {vcpus: [{vcpu: 0, csMs: 12, csPreemptedMs: 3, preemptedMs: 40}], cells: 2};
	t.ok(updateCs(live.runDir, cs), 'critical sections observed are published');
	t.match(readVmStates(root).vms[0]?.cs, {...cs, at: /^\d{4}-/}, 'and read back with their time');
	t.notOk(updateCs(live.runDir, {vcpus: [{vcpu: 0, csMs: -1, csPreemptedMs: 0, preemptedMs: 0}], cells: 0}), 'a negative time is refused');
	const acted = {
		vcpus: [{vcpu: 0, csMs: 12, csPreemptedMs: 3, preemptedMs: 40, act: {boosts: 3, boostedUs: 2500, budgetUs: 9000, debtUs: 1000, paidUs: 4000}}],
		cells: 2,
	};
	t.ok(updateCs(live.runDir, acted), 'and acting: boosts, budget left, payback');
	t.match(readVmStates(root).vms[0]?.cs, acted, 'read back');
	t.notOk(
		updateCs(live.runDir, {...acted, vcpus: [{...acted.vcpus[0], act: {...acted.vcpus[0]?.act, boosts: 1.5}}]} as typeof acted),
		'a fraction of a boost is refused',
	);
	t.throws(() => parseVmState({...validState('pvrun-1-aa', 1), cs: {vcpus: {}, cells: 0, at: new Date().toISOString()}}), /cs.vcpus is not a list/);
	t.throws(
		() => parseVmState({...validState('pvrun-1-aa', 1), cs: {vcpus: [{vcpu: 0, csMs: 1, csPreemptedMs: 0}], cells: 0, at: new Date().toISOString()}}),
		/cs.vcpus\[0\]\.preemptedMs/,
	);
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
	t.equal(readVmStates(root).vms[0]?.state, 'starting', 'QEMU runs, not asked yet: starting');
	t.ok(updateGuest(live.runDir, false));
	const paused = readVmStates(root).vms[0];
	t.match(paused, {state: 'paused', guest: {state: 'paused', since: /^\d{4}-/}}, 'paused, and since when');
	t.ok(updateGuest(live.runDir, false));
	t.equal(readVmStates(root).vms[0]?.guest?.since, paused?.guest?.since, 'the same state again keeps its time');
	t.ok(updateGuest(live.runDir, true));
	t.equal(readVmStates(root).vms[0]?.state, 'running');
	t.throws(
		() => parseVmState({...validState('pvrun-1-aa', 1), guest: {state: 'asleep', since: new Date().toISOString()}}),
		/guest.state is not running or paused/,
	);
	fs.rmSync(live.runDir, {recursive: true});
	t.notOk(updatePlacement(live.runDir, []), 'the VM ended: false, no throw');
});

t.test("updatePlacement publishes the hint engine's decisions with the placement (pvrun top); each is checked", async (t) => {
	const root = fakeRoot(t);
	const live = runDir(root, process.pid, '0a0b0d');
	writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: []}, {}, {qemuPid: process.pid});
	const activity: HintActivity = {
		records: 12,
		pins: 2,
		floats: 1,
		denies: 1,
		recent: [
			{at: 1_780_000_000_000, kind: 'pin', vcpus: [1], cpus: [1], tid: 512, comm: 'stress', shared: false},
			{at: 1_780_000_001_000, kind: 'float', vcpus: [1], cpus: [0, 1], tid: 512, comm: 'stress'},
			{at: 1_780_000_002_000, kind: 'deny', vcpus: [2, 3], cpus: [0, 1]},
		],
	};
	t.ok(updatePlacement(live.runDir, [{vcpu: 1, cpus: [0, 1], exclusive: false}], activity));
	t.same(readVmStates(root).vms[0]?.activity, activity, 'read back as written');
	const bad = (change: Record<string, unknown>, why: RegExp): void => {
		t.throws(() => parseVmState({...validState('pvrun-1-aa', 1), activity: {...activity, ...change}}), why, String(why));
	};
	bad({recent: Array.from({length: 9}, () => activity.recent[0])}, /activity.recent is not a list of at most 8/);
	bad({pins: -1}, /activity.pins is not an integer >= 0/);
	bad({recent: [{...activity.recent[0], kind: 'steal'}]}, /activity.recent\[0\].kind is not pin, float or deny/);
	bad({recent: [{...activity.recent[0], comm: 'a-thread-name-far-too-long'}]}, /activity.recent\[0\].comm is longer than a thread name/);
	bad({recent: [{...activity.recent[0], comm: 'x\u001b[2J'}]}, /comm is not a one-line string/);
	bad({recent: [{...activity.recent[0], comm: 'x\u009b2J'}]}, /comm is not a one-line string/);
	bad({recent: [{...activity.recent[0], cpus: [1.5]}]}, /activity.recent\[0\].cpus is not a list of numbers/);
	t.throws(() => parseVmState({...validState('pvrun-1-aa', 1), name: 'evil\u009b2Jname'}), /name is not a one-line string/, 'a C1 control (CSI) too');
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

t.test('a VM is named by its id, its -name, or its QEMU or pvrun pid, and by nothing else', async (t) => {
	const vm = {id: 'pvrun-100-abcdef', name: 'web', qemuPid: 100, pvrunPid: 99};
	for (const wanted of ['pvrun-100-abcdef', 'web', '100', '99']) t.ok(isVmNamed(vm, wanted), wanted);
	for (const wanted of ['pvrun-100', 'Web', '101', '', 'abcdef']) t.notOk(isVmNamed(vm, wanted), JSON.stringify(wanted));
	t.notOk(isVmNamed({id: vm.id, qemuPid: 100, pvrunPid: 99}, 'undefined'), 'a VM without a name');
});
