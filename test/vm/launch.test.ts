// Launching a VM (src/vm/launch.ts: runPlain, runVm, showSummaries), without
// a guest: pvrun runs a fake QEMU (test/helpers/fake-qemu.ts). runPlain
// becomes QEMU with exactly the user's arguments; runVm becomes QEMU with
// pvrun's additions after a helper has started, or, when QEMU cannot run,
// the event log cannot be opened or the run directory cannot be made, says
// so in one line with a shell's status and leaves nothing. Whether the helper
// prints decision summaries is decided from the terminal (a pty from
// script(1)). Needs `make build`.
import fs from 'node:fs';
import path from 'node:path';
import t, {type Test} from 'tap';
import {helperEnv, type HelperOrders} from '../../src/vm/helper.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {processStat} from '../../src/host/proc.js';
import {readVmStates, type VmStatus} from '../../src/vm/state.js';
import {Sandbox, signal, sleep, type Ran} from '../helpers/fake-qemu.js';
import {deadPid} from '../helpers/run-dirs.js';
import {within} from '../helpers/within.js';
import {running} from '../helpers/host-view.js';

// The cases mostly wait for processes: they run side by side.
t.jobs = 4;

/** Lines of a stderr text. */
const lines = (text: string): string[] => text.split('\n').filter(Boolean);

/** The VM pvrun's TMPDIR lists (its state file, written before the exec), once QEMU runs too; within 10 s. */
async function listedVm(box: Sandbox): Promise<VmStatus | undefined> {
	let vm: VmStatus | undefined;
	await within(10_000, () => (vm = readVmStates(box.tmp).vms[0]) !== undefined && box.qemuRan() !== undefined);
	return vm;
}

/** Whether pvrun left nothing of `pid`'s VM: no run directory, no shared memory, no process. */
function nothingLeft(t: Test, box: Sandbox, pid: number, what: string): void {
	t.same(fs.readdirSync(box.tmp), [], `${what}: no run directory`);
	t.same(
		fs.readdirSync('/dev/shm').filter((n) => n.startsWith(`pvrun-${pid}-`)),
		[],
		`${what}: no shared memory`,
	);
	t.same(box.processes(), [], `${what}: no process left (no helper)`);
}

t.test('runVm: pvrun becomes QEMU after starting its helper; stale leftovers go first; the helper cleans up after QEMU', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	// Left by a pvrun killed over a minute ago: removed before the new VM's files are made.
	const stale = path.join(box.tmp, `pvrun-${deadPid}-abc123`);
	fs.mkdirSync(stale);
	const old = new Date(Date.now() - 120_000);
	fs.utimesSync(stale, old, old);
	const log = path.join(box.dir, 'events.jsonl');
	const user = ['-display', 'none', '-smp', '2'];
	const run = box.start(['--pv-accel', 'tcg', '--pv-log', log, ...user], {mode: 'run'});
	const vm = await listedVm(box);
	const qemu = box.qemuRan();
	if (!vm || !qemu) throw new Error(`no VM listed: ${run.stderr()}`);
	t.equal(qemu.pid, run.pid, 'QEMU runs under the pid the caller started (exec in place)');
	t.same(qemu.args.slice(0, user.length), user, "the user's arguments first, unchanged");
	t.ok(qemu.args.includes('tcg,thread=multi'), 'then the accelerator pvrun chose');
	t.ok(qemu.args.includes(`unix:${path.join(vm.runDir, 'qmp.sock')},server=on,wait=off`), "and pvrun's QMP socket, in its run directory");
	t.equal(vm.id, path.basename(qemu.shm), 'the run directory and the shared memory share the id');
	t.match(vm.id, new RegExp(`^pvrun-${run.pid}-[0-9a-f]{6}$`), "named after QEMU's pid");
	t.equal(vm.qemuPid, run.pid, 'the state file names QEMU');
	t.not(vm.pvrunPid, run.pid, 'and the helper that serves it');
	t.equal(processStat(vm.pvrunPid)?.ppid, run.pid, "the helper is QEMU's child");
	t.ok(fs.existsSync(qemu.shm), 'the shared memory is there');
	t.notOk(fs.existsSync(stale), "a killed pvrun's leftover is gone");
	t.ok((await within(10_000, () => readEventLog(log).some((e) => e.event === 'start'))) >= 0, 'the helper logs to --pv-log');
	t.equal(run.stderr(), 'pvrun: accelerator: TCG (multi-threaded) as requested\n', 'the accelerator line on stderr, before the exec');
	await sleep(500);
	t.ok(running(vm.pvrunPid) && fs.existsSync(vm.runDir) && fs.existsSync(qemu.shm), 'the helper serves on while QEMU runs (QEMU holds its pipe)');

	signal(run.pid, 'SIGTERM');
	const ran = await run.done;
	t.equal(ran.signal, 'SIGTERM', "the caller sees QEMU's end");
	t.equal(ran.stderr, 'pvrun: accelerator: TCG (multi-threaded) as requested\n', 'and nothing more on stderr');
	t.ok((await within(5000, () => !running(vm.pvrunPid))) >= 0, 'the helper is gone');
	nothingLeft(t, box, run.pid, 'after QEMU');
});

t.test('runVm: QEMU not found, not executable or a directory: one line, 127 or 126, nothing created', {buffered: true}, async (t) => {
	const cases = await Promise.all(
		(['missing', 'plain', 'directory'] as const).map(async (kind) => {
			const box = new Sandbox(t);
			const qemu = path.join(box.dir, `${kind}-qemu`);
			if (kind === 'plain') fs.writeFileSync(qemu, '#!/bin/sh\n', {mode: 0o644});
			if (kind === 'directory') fs.mkdirSync(qemu);
			const log = path.join(box.dir, 'events.jsonl');
			return {kind, box, qemu, log, ran: await box.run(['--pv-log', log, '-display', 'none'], {qemu})};
		}),
	);
	for (const {kind, box, qemu, log, ran} of cases) {
		if (kind === 'missing') {
			t.equal(ran.code, 127, 'missing: exit 127');
			t.equal(ran.stderr, `pvrun: ${qemu} not found: check the path given with --pv-qemu\n`, 'missing: one line naming the fix');
		} else if (kind === 'plain') {
			t.equal(ran.code, 126, 'not executable: exit 126');
			t.equal(ran.stderr, `pvrun: ${qemu} is not executable: check its permissions\n`, 'not executable: one line naming the fix');
		} else {
			t.equal(ran.code, 126, 'a directory: exit 126');
			t.equal(ran.stderr, `pvrun: ${qemu} is a directory, not a program: check the path\n`, 'a directory: one line saying so');
		}
		t.notOk(fs.existsSync(log), `${kind}: checked before the event log is opened`);
		nothingLeft(t, box, ran.pid, kind);
	}
});

t.test('runVm: the event log cannot be opened (--pv-log): one line naming it, 2, QEMU not run, nothing created', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const log = path.join(box.dir, 'no', 'such', 'events.jsonl');
	const ran = await box.run(['--pv-log', log, '-display', 'none'], {mode: 'run'});
	t.equal(ran.code, 2, 'exit 2');
	t.equal(ran.stderr, `pvrun: cannot open the event log ${log} (--pv-log): ENOENT\n`, 'one line naming the file');
	t.equal(box.qemuRan(), undefined, 'QEMU did not run');
	nothingLeft(t, box, ran.pid, 'no event log');
});

t.test('runVm: the runtime root cannot be made (PVRUN_RUNTIME_DIR under a file): one line, 1, no shared memory', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const file = path.join(box.dir, 'a-file');
	fs.writeFileSync(file, '');
	const root = path.join(file, 'run');
	const ran = await box.run(['-display', 'none'], {mode: 'run', env: {PVRUN_RUNTIME_DIR: root}});
	t.equal(ran.code, 1, 'exit 1');
	t.same(lines(ran.stderr), [`pvrun: cannot create pvrun's runtime directory ${root}: ENOTDIR (PVRUN_RUNTIME_DIR)`], 'one line naming it');
	t.equal(box.qemuRan(), undefined, 'QEMU did not run');
	nothingLeft(t, box, ran.pid, 'no runtime root');
	const relative = await box.run(['-display', 'none'], {mode: 'run', env: {PVRUN_RUNTIME_DIR: 'run'}});
	t.equal(relative.code, 2, 'a relative PVRUN_RUNTIME_DIR: exit 2');
	t.same(lines(relative.stderr), ['pvrun: PVRUN_RUNTIME_DIR must be an absolute path, not "run"']);
	t.equal(box.qemuRan(), undefined, 'QEMU did not run');
});

t.test('runVm: a missing PVRUN_RUNTIME_DIR is made, with its parents', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const root = path.join(box.tmp, 'new', 'run');
	const ran = box.start(['-display', 'none'], {mode: 'run', env: {PVRUN_RUNTIME_DIR: root}});
	let vm: VmStatus | undefined;
	await within(10_000, () => (vm = readVmStates(root).vms[0]) !== undefined && box.qemuRan() !== undefined);
	t.equal(vm?.runDir, path.join(root, `pvrun-${ran.pid}-${/[0-9a-f]{6}$/.exec(vm?.runDir ?? '')?.[0] ?? ''}`), 'the VM is listed there');
	signal(ran.pid, 'SIGTERM');
	await ran.done;
	t.ok((await within(5000, () => fs.readdirSync(root).length === 0)) >= 0, 'its run directory gone once QEMU ended');
});

t.test(
	'runVm: QEMU that fails at exec (bad interpreter), after the helper started: one line, 127; the helper removes the files',
	{buffered: true},
	async (t) => {
		const box = new Sandbox(t);
		const broken = path.join(box.dir, 'broken-qemu');
		fs.writeFileSync(broken, '#!/nonexistent/interpreter\n', {mode: 0o755});
		// Settles once the helper, which holds stderr too, has exited.
		const ran = await box.run(['-accel', 'tcg', '-display', 'none'], {qemu: broken});
		t.equal(ran.code, 127, 'exit 127');
		t.equal(ran.stderr, `pvrun: cannot run ${broken}: ENOENT\n`, 'one line naming the binary');
		nothingLeft(t, box, ran.pid, 'exec failed');
	},
);

t.test("runPlain (--pv-off): QEMU exactly as given, in pvrun's place; no helper, no files", {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const user = ['-accel', 'tcg', '-display', 'none', '-daemonize'];
	const run = box.start(['--pv-off', ...user], {mode: 'run'});
	t.ok((await within(10_000, () => box.qemuRan() !== undefined)) >= 0, 'QEMU runs');
	t.same(box.qemuRan()?.args, user, "the user's arguments, nothing added");
	t.equal(box.qemuRan()?.pid, run.pid, 'under the pid the caller started');
	t.same(box.processes(), [run.pid], 'no helper, no detached pvrun');
	t.same(fs.readdirSync(box.tmp), [], 'no run directory');
	signal(run.pid, 'SIGTERM');
	const ran = await run.done;
	t.same([ran.signal, ran.stderr], ['SIGTERM', ''], 'QEMU ended as it did, pvrun said nothing');
});

t.test('runPlain: QEMU not found (a name looked up in PATH) or not executable: one line, 127 or 126', {buffered: true}, async (t) => {
	const box = new Sandbox(t);
	const plain = path.join(box.dir, 'plain-qemu');
	fs.writeFileSync(plain, '#!/bin/sh\n', {mode: 0o644});
	const [missing, notExecutable] = await Promise.all([
		box.run(['--pv-off', '-display', 'none'], {qemu: 'pvrun-no-such-qemu'}),
		box.run(['--pv-off', '-display', 'none'], {qemu: plain}),
	]);
	t.same(
		[missing.code, missing.stderr],
		[127, 'pvrun: pvrun-no-such-qemu not found: run make setup (or name the QEMU binary with --pv-qemu PATH)\n'],
		'not found: 127, one line naming the fix',
	);
	t.same([notExecutable.code, notExecutable.stderr], [126, `pvrun: ${plain} is not executable: check its permissions\n`], 'not executable: 126, one line');
});

/** A word for sh: single-quoted. */
const shellWord = (word: string): string => `'${word.replaceAll("'", "'\\''")}'`;

interface TerminalCase {
	name: string;
	/** QEMU's arguments. */
	args: string[];
	/** Where stdout and stderr go: the terminal, or a file. */
	stdout: 'terminal' | 'file';
	stderr: 'terminal' | 'file';
	summaries: boolean;
}

const terminalCases: TerminalCase[] = [
	{name: 'the terminal is the console (-serial stdio)', args: ['-serial', 'stdio'], stdout: 'terminal', stderr: 'terminal', summaries: false},
	{name: 'a terminal, the console elsewhere', args: ['-serial', 'none'], stdout: 'terminal', stderr: 'terminal', summaries: true},
	{
		name: '-serial stdio with stdout in a file: the terminal is not the console',
		args: ['-serial', 'stdio'],
		stdout: 'file',
		stderr: 'terminal',
		summaries: true,
	},
	{name: 'stderr in a file', args: ['-serial', 'none'], stdout: 'terminal', stderr: 'file', summaries: false},
];

/**
 * Run pvrun in a terminal (script(1)) as `c` says; what it told its helper,
 * and how it ended once QEMU was stopped. The orders are read from the
 * helper's environment as /proc shows it (as it was at exec, although the
 * helper deletes the variable): whether it prints summaries is decided by
 * pvrun, before the exec, and shows only once a guest makes decisions.
 */
async function inTerminal(t: Test, c: TerminalCase): Promise<{orders: HelperOrders | undefined; ran: Ran; box: Sandbox; qemuPid: number}> {
	const box = new Sandbox(t);
	const redirect = `${c.stdout === 'file' ? ` >${shellWord(path.join(box.dir, 'stdout'))}` : ''}${c.stderr === 'file' ? ` 2>${shellWord(path.join(box.dir, 'stderr'))}` : ''}`;
	const run = box.start(['-accel', 'tcg', '-display', 'none', ...c.args], {
		mode: 'run',
		wrap: (command) => ['script', '-qec', `exec ${command.map(shellWord).join(' ')}${redirect}`, '/dev/null'],
	});
	const vm = await listedVm(box);
	let orders: HelperOrders | undefined;
	if (vm) {
		const entry = fs
			.readFileSync(`/proc/${vm.pvrunPid}/environ`, 'utf8')
			.split('\0')
			.find((e) => e.startsWith(`${helperEnv}=`));
		if (entry !== undefined) orders = JSON.parse(entry.slice(helperEnv.length + 1)) as HelperOrders;
		signal(vm.qemuPid, 'SIGTERM');
	}
	return {orders, ran: await run.done, box, qemuPid: vm?.qemuPid ?? 0};
}

t.test('decision summaries: on a terminal that is not the guest console, and only there', {buffered: true}, async (t) => {
	const results = await Promise.all(terminalCases.map((c) => inTerminal(t, c)));
	for (const [i, c] of terminalCases.entries()) {
		const r = results[i];
		if (!r) continue;
		t.equal(r.orders?.summaries, c.summaries, `${c.name}: summaries ${c.summaries ? 'on' : 'off'}`);
		await within(5000, () => r.box.processes().length === 0);
		nothingLeft(t, r.box, r.qemuPid, c.name);
	}
});
