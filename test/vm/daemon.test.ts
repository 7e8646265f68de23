// -daemonize (src/vm/daemon.ts: runDaemonized, serveDaemon, the pidfile),
// without a guest: pvrun runs a fake QEMU (test/helpers/fake-qemu.ts) that
// daemonizes, or fails, or writes no pidfile or a wrong one. pvrun returns
// with the status of QEMU's first process and at most one line of its own;
// a detached pvrun serves the process the pidfile names while it lives and
// removes its files when it is gone; when there is nothing to serve, nothing
// of pvrun is left by the time the command returns. Needs `make build`.
import fs from 'node:fs';
import path from 'node:path';
import t, {type Test} from 'tap';
import {readEventLog} from '../../src/vm/event-log.js';
import {readVmStates} from '../../src/vm/state.js';
import {Sandbox, commandLine, ownerOf, sessionOf, signal, sleep} from '../helpers/fake-qemu.js';
import {within} from '../helpers/within.js';
import {fdTarget, running} from '../helpers/host-view.js';

// The cases mostly wait (pvrun's 2 s for a pidfile, a poll of QEMU's pid): they run side by side.
t.jobs = 6;

/** QEMU's arguments as a user gives them: an accelerator chosen (so pvrun says nothing about it), and -daemonize. */
const vmArgs = ['-accel', 'tcg', '-display', 'none', '-daemonize'];
const daemonEntry = path.join('dist', 'vm', 'daemon-entry.js');

/**
 * Nothing of a run is left once the command has returned: no run directory,
 * no shared memory (named in QEMU's arguments, when it ran), no process (a
 * detached pvrun with nothing to serve exits before the command returns).
 */
function nothingLeft(t: Test, box: Sandbox, what: string): void {
	t.same(fs.readdirSync(box.tmp), [], `${what}: no run directory left`);
	const shm = box.qemuRan()?.shm;
	if (shm !== undefined) t.notOk(fs.existsSync(shm), `${what}: no shared memory left`);
	t.same(box.processes(), [], `${what}: no process left`);
}

// The three pidfile cases come first: each takes the detached pvrun's 2 s wait for a pidfile.
// foreign: the pid of a live process that is not this VM's QEMU (its command line does not name the VM's shared memory): this test's.
const pidFileCases = [
	{mode: 'nopid', pidFile: false, why: 'ENOENT'},
	{mode: 'garbage', pidFile: true, why: `"not-a-pid" is not this VM's running QEMU`},
	{mode: 'foreign', pidFile: true, why: `"${process.pid}" is not this VM's running QEMU`},
] as const;
for (const c of pidFileCases)
	t.test(`QEMU's pidfile ${c.mode}: one line, the first process's status, nothing left`, {buffered: true}, async (t) => {
		const box = new Sandbox(t);
		const userPidFile = path.join(box.dir, 'vm.pid');
		const args = c.pidFile ? [...vmArgs, '-pidfile', userPidFile] : vmArgs;
		const run = await box.run(args, {mode: c.mode, env: {FAKE_PID: String(process.pid)}});
		const qemu = box.qemuRan();
		const pidFile = c.pidFile ? userPidFile : path.join(qemu?.runDir ?? '?', 'qemu.pid');
		t.equal(run.code, 0, "pvrun exits with the status of QEMU's first process");
		t.equal(run.stderr, `pvrun: cannot read QEMU's pid from ${pidFile}: ${c.why}; the VM runs without hints\n`, 'one line saying why');
		nothingLeft(t, box, c.mode);
	});

t.test("QEMU daemonizes: pvrun returns its first process's 0; a detached pvrun serves the pidfile's QEMU until it is gone", {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const pidFile = path.join(box.dir, 'vm.pid');
	const log = path.join(box.dir, 'events.jsonl');
	const user = [...vmArgs, '-pidfile', pidFile];
	const run = await box.run(['--pv-log', log, ...user], {mode: 'up'});
	t.same([run.code, run.signal, run.stderr, run.stdout], [0, null, '', ''], 'exit 0, nothing said');

	const qemu = box.qemuRan();
	if (!qemu) throw new Error('the fake QEMU did not run');
	t.same(qemu.args.slice(0, user.length), user, "QEMU's first process got the user's arguments first");
	const daemonPid = ownerOf(qemu.id);
	t.not(daemonPid, run.pid, 'the VM is named after the detached pvrun, not the command');
	t.same(box.running(daemonEntry), [daemonPid], 'one detached pvrun runs: that one');
	const vm = Number(fs.readFileSync(pidFile, 'utf8'));
	t.ok(running(vm) && commandLine(vm).join(' ').includes(qemu.shm), 'the pidfile names the daemonized QEMU');
	t.equal(sessionOf(daemonPid), daemonPid, 'the detached pvrun is in a session of its own');
	t.equal(fs.readlinkSync(`/proc/${daemonPid}/cwd`), '/', 'in /');
	t.same(
		[0, 1, 2].map((fd) => fdTarget(daemonPid, fd)),
		['/dev/null', '/dev/null', '/dev/null'],
		'with stdio on /dev/null',
	);
	t.match(
		readVmStates(box.tmp).vms,
		[{id: qemu.id, pvrunPid: daemonPid, qemuPid: vm, runDir: qemu.runDir}],
		'pvrun status lists the VM (its state file is written before the command returns)',
	);
	t.match(readEventLog(log)[0], {event: 'start', id: qemu.id, qemuPid: vm}, 'the hint session serves that QEMU');

	await sleep(600);
	t.ok(running(daemonPid) && fs.existsSync(qemu.runDir) && fs.existsSync(qemu.shm), 'still serving, with its files, while QEMU runs');
	signal(vm, 'SIGTERM');
	t.ok((await within(5000, () => !running(daemonPid))) >= 0, 'the detached pvrun exits once QEMU is gone');
	t.notOk(fs.existsSync(qemu.runDir), 'its run directory is removed');
	t.notOk(fs.existsSync(qemu.shm), 'its shared memory is removed');
	t.equal(readEventLog(log).at(-1)?.event, 'exit', 'the event log ends with the exit record');
	t.same(box.processes(), [], 'no process left');
});

t.test(
	"pvrun's own pidfile, written after QEMU's first process exits; the detached pvrun's SIGTERM stops the hint channel only",
	{buffered: true},
	async (t) => {
		const box = new Sandbox(t);
		// No accelerator among QEMU's arguments: pvrun adds one, and says so.
		const run = await box.run(['--pv-accel', 'tcg', '-display', 'none', '-daemonize'], {mode: 'late'});
		t.equal(run.code, 0, 'exit 0');
		t.equal(run.stderr, 'pvrun: accelerator: TCG (multi-threaded) as requested\n', 'the accelerator line, nothing else');
		const qemu = box.qemuRan();
		if (!qemu) throw new Error('the fake QEMU did not run');
		const pidFile = path.join(qemu.runDir, 'qemu.pid');
		t.same(qemu.args.slice(-2), ['-pidfile', pidFile], 'pvrun adds a -pidfile in its run directory, last');
		t.ok(qemu.args.includes('tcg,thread=multi'), 'and the accelerator');
		const daemonPid = ownerOf(qemu.id);
		const vm = Number(fs.readFileSync(pidFile, 'utf8'));
		t.match(readVmStates(box.tmp).vms, [{pvrunPid: daemonPid, qemuPid: vm}], 'the command returned once the detached pvrun had the late pidfile');

		signal(daemonPid, 'SIGTERM');
		t.ok((await within(5000, () => !running(daemonPid))) >= 0, 'the detached pvrun exits on SIGTERM');
		t.notOk(fs.existsSync(qemu.runDir), 'its run directory is removed');
		t.notOk(fs.existsSync(qemu.shm), 'its shared memory is removed');
		await sleep(300);
		t.same(box.processes(), [vm], 'the daemonized QEMU runs on, alone');
	},
);

t.test('the command killed while QEMU initialises: the detached pvrun serves QEMU when it comes up', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const pidFile = path.join(box.dir, 'vm.pid');
	const front = box.start([...vmArgs, '-pidfile', pidFile], {mode: 'hold'});
	t.ok((await within(10_000, () => box.qemuRan() !== undefined)) >= 0, "QEMU's first process is starting");
	const qemu = box.qemuRan();
	if (!qemu) throw new Error('the fake QEMU did not run');
	signal(front.pid, 'SIGKILL');
	fs.writeFileSync(path.join(box.dir, 'go'), 'go');
	t.equal((await front.done).signal, 'SIGKILL', 'the command died');
	const daemonPid = ownerOf(qemu.id);
	let vm = 0;
	const tookOver = await within(10_000, () => (vm = readVmStates(box.tmp).vms[0]?.qemuPid ?? 0) > 0);
	t.ok(tookOver >= 0, 'the detached pvrun took the VM over');
	t.equal(vm, Number(fs.readFileSync(pidFile, 'utf8')), 'the QEMU the pidfile names');
	t.ok(running(daemonPid), 'and runs beside it');
	signal(vm, 'SIGTERM');
	t.ok((await within(5000, () => !running(daemonPid))) >= 0, 'and exits once QEMU is gone');
	t.notOk(fs.existsSync(qemu.runDir) || fs.existsSync(qemu.shm), 'its files are removed');
	t.same(box.processes(), [], 'no process left');
});

t.test("QEMU's first process fails: its status and message, nothing left", {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const run = await box.run([...vmArgs, '-serial', 'stdio'], {mode: 'fail'});
	t.equal(run.code, 1, 'exit 1, as QEMU');
	t.equal(run.stderr, 'fake-qemu: cannot use stdio with -daemonize\n', "QEMU's message, none of pvrun's");
	t.ok(box.qemuRan(), 'QEMU ran');
	nothingLeft(t, box, 'QEMU failed');
});

t.test("QEMU's first process killed by a signal: pvrun ends by the same signal, nothing left", {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const run = await box.run(vmArgs, {mode: 'signal'});
	t.same([run.code, run.signal, run.stderr], [null, 'SIGTERM', ''], 'killed by SIGTERM, nothing said');
	t.ok(box.qemuRan(), 'QEMU ran');
	nothingLeft(t, box, 'QEMU killed');
});

t.test('a QEMU that cannot be started (bad interpreter): one line, 127, the detached pvrun removes its files first', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const broken = path.join(box.dir, 'broken-qemu');
	fs.writeFileSync(broken, '#!/nonexistent/interpreter\n', {mode: 0o755});
	const run = await box.run(vmArgs, {qemu: broken});
	t.equal(run.code, 127, 'exit 127');
	t.equal(run.stderr, `pvrun: cannot start QEMU: spawn ${broken} ENOENT\n`, 'one line naming the binary');
	nothingLeft(t, box, 'QEMU not started');
});

t.test('QEMU not found: one line, 127, checked before a detached pvrun starts, nothing left', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const missing = path.join(box.dir, 'no-such-qemu');
	const log = path.join(box.dir, 'events.jsonl');
	const run = await box.run(['--pv-log', log, ...vmArgs], {qemu: missing});
	t.equal(run.code, 127, 'exit 127');
	t.equal(run.stderr, `pvrun: ${missing} not found: check the path given with --pv-qemu\n`, 'one line naming the fix');
	t.notOk(fs.existsSync(log), 'no detached pvrun opened the event log');
	nothingLeft(t, box, 'QEMU not found');
});

t.test('the event log cannot be opened (--pv-log): one line naming it, 2, QEMU not started, nothing left', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const log = path.join(box.dir, 'no', 'such', 'events.jsonl');
	const run = await box.run(['--pv-log', log, ...vmArgs], {mode: 'up'});
	t.equal(run.code, 2, 'exit 2');
	t.equal(run.stderr, `pvrun: cannot open the event log ${log} (--pv-log): ENOENT\n`, 'one line naming the file');
	t.equal(box.qemuRan(), undefined, 'QEMU did not run');
	nothingLeft(t, box, 'no event log');
});
