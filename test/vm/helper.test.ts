// pvrun's helper (src/vm/helper.ts), with sh standing in for QEMU: a front
// process on dist/ creates the run files, starts the helper and execs sh in
// place, as src/vm/launch.ts does. The helper runs in a session of its own,
// does not hold the descriptors the caller handed to QEMU, notices QEMU's end
// through the pipe (or, when something QEMU started holds the pipe, through
// the pid), then removes the run directory and shared memory and exits.
// Its SIGTERM stops the hint channel only: QEMU runs on. Needs `make build`.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {processAlive} from '../../src/host/proc.js';
import {packageRoot} from '../../src/util/paths.js';
import {planVm, type VmPlan} from '../../src/vm/plan.js';
import type {HostFacts} from '../../src/vm/probe.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {vmConfig} from '../helpers/vm-config.js';

const dist = path.join(packageRoot, 'dist', 'vm');
const front = `
import fs from 'node:fs';
const {createRunFiles} = await import(${JSON.stringify(path.join(dist, 'session.js'))});
const {startHelper} = await import(${JSON.stringify(path.join(dist, 'helper.js'))});
const {execQemu} = await import(${JSON.stringify(path.join(dist, 'exec.js'))});
const [plan, log, script] = process.argv.slice(1);
const area = createRunFiles(JSON.parse(plan));
const helper = startHelper({plan: JSON.parse(plan), log, summaries: false, qemuPid: process.pid, hostEpoch: area.hostEpoch.toString()});
area.unmap();
fs.writeSync(1, 'helper ' + helper.pid + '\\n');
execQemu('sh', ['-c', script], [helper.qemuEnd]);
`;

const config = vmConfig({accel: 'tcg', fastPath: false, qemu: 'sh'});
const facts: HostFacts = {ownCpus: [0], accel: {accel: 'tcg', args: [], reason: 'TCG'}, fastPath: 'off'};

interface Front {
	plan: VmPlan;
	log: string;
	/** QEMU's pid: the front's. */
	qemu: number;
	/** Write a line to QEMU's stdin, which ends it. */
	quit(): void;
	/** The next stdout line that matches `pattern` (bounded wait). */
	line(pattern: RegExp): Promise<string>;
	helper: number;
	stderr(): string;
	/** Kill `pid` at teardown too. */
	track(pid: number): void;
}

/** Start a front whose QEMU is `sh -c script`, with a file of the caller's at descriptor 23 (where libvirt puts its monitor socket: above the range Node marks close-on-exec at start-up); everything it started is killed at teardown. */
async function startFront(t: Test, script: string): Promise<Front> {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-helper-test-'));
	const plan = planVm(['-smp', '2'], config, facts, root, {pid: process.pid, cwd: root});
	const log = path.join(root, 'events.jsonl');
	fs.writeFileSync(path.join(root, 'disk'), '');
	const disk = fs.openSync(path.join(root, 'disk'), 'r');
	const env = {...process.env};
	delete env['NODE_OPTIONS']; // the test runner's preload stays out of the front and the helper
	const child = spawn(process.execPath, ['--input-type=module', '-e', front, JSON.stringify(plan), log, script], {
		stdio: ['pipe', 'pipe', 'pipe', ...Array<'ignore'>(20).fill('ignore'), disk],
		env,
	});
	fs.closeSync(disk);
	const pids: number[] = [];
	t.teardown(() => {
		for (const pid of [child.pid ?? 0, ...pids]) if (pid > 0 && processAlive(pid)) process.kill(pid, 'SIGKILL');
		fs.rmSync(root, {recursive: true, force: true});
		fs.rmSync(plan.shmPath, {force: true});
	});
	let out = '';
	let err = '';
	child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
	const waiting: Array<() => void> = [];
	child.stdout?.on('data', (d: Buffer) => {
		out += d.toString();
		for (const w of waiting.splice(0)) w();
	});
	const line = async (pattern: RegExp): Promise<string> => {
		const deadline = Date.now() + 10_000;
		for (;;) {
			const found = out.split('\n').find((l) => pattern.test(l));
			if (found !== undefined) return found;
			if (Date.now() > deadline) throw new Error(`no line ${String(pattern)} in ${JSON.stringify(out)}; stderr ${JSON.stringify(err)}`);
			await new Promise<void>((resolve) => {
				waiting.push(resolve);
				setTimeout(resolve, 200);
			});
		}
	};
	const helper = Number((await line(/^helper \d+$/)).split(' ')[1]);
	pids.push(helper);
	// Serving once its session has started (its signal handlers are set by then).
	if (!(await until(() => fs.existsSync(log) && readEventLog(log).some((e) => e.event === 'start'), 10_000)))
		throw new Error(`the helper did not start: ${err}`);
	return {plan, log, qemu: child.pid ?? 0, quit: () => child.stdin?.end('quit\n'), line, helper, stderr: () => err, track: (pid) => pids.push(pid)};
}

/** Wait until `check` holds, at most `ms`; whether it did. */
async function until(check: () => boolean, ms: number): Promise<boolean> {
	const deadline = Date.now() + ms;
	while (!check()) {
		if (Date.now() > deadline) return false;
		await new Promise((r) => setTimeout(r, 50));
	}
	return true;
}

/** A process's group and session (fields 5 and 6 of its stat). */
function groupOf(pid: number): {group: number; session: number} {
	const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
	const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	return {group: Number(f[2]), session: Number(f[3])};
}

function fdTargets(pid: number): string[] {
	return fs.readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
		try {
			return [fs.readlinkSync(`/proc/${pid}/fd/${fd}`)];
		} catch {
			return [];
		}
	});
}

t.test('QEMU ends: the helper removes the run files and exits', async (t) => {
	const f = await startFront(t, 'echo "qemu $$"; read line');
	const qemu = Number((await f.line(/^qemu \d+$/)).split(' ')[1]);
	t.equal(qemu, f.qemu, 'QEMU has the pid the caller started');
	t.ok(processAlive(f.helper), 'the helper serves while QEMU runs');
	t.equal(groupOf(f.helper).group, f.helper, "a process group of its own: a terminal's Ctrl-C reaches QEMU alone");
	t.equal(groupOf(f.helper).session, groupOf(qemu).session, "in QEMU's session, so in QEMU's scheduling group (autogroup)");
	t.ok(fs.existsSync(f.plan.runDir) && fs.existsSync(f.plan.shmPath), 'the run directory and the shared memory are there');
	const disk = path.join(path.dirname(f.plan.runDir), 'disk');
	t.ok(fdTargets(qemu).includes(disk), "QEMU holds the caller's descriptor");
	t.notOk(fdTargets(f.helper).includes(disk), 'the helper does not');
	t.match(readEventLog(f.log)[0], {event: 'start', id: f.plan.id, qemuPid: qemu});

	f.quit();
	t.ok(await until(() => !processAlive(f.helper), 5000), 'the helper is gone within 5 s of QEMU, with no pid to poll for');
	t.notOk(fs.existsSync(f.plan.runDir), 'the run directory is removed');
	t.notOk(fs.existsSync(f.plan.shmPath), 'the shared memory is removed');
	t.equal(readEventLog(f.log).at(-1)?.event, 'exit', 'the event log ends with the exit record');
	t.equal(f.stderr(), '', 'nothing said on stderr');
});

t.test('QEMU ends while a process it started holds the pipe: noticed by its pid', async (t) => {
	const f = await startFront(t, 'sleep 30 & echo "child $!"; read line');
	const child = Number((await f.line(/^child \d+$/)).split(' ')[1]);
	f.track(child);
	f.quit();
	t.ok(await until(() => !processAlive(f.qemu), 5000), 'QEMU ended');
	t.ok(processAlive(child), 'its child holds the pipe open');
	t.ok(await until(() => !processAlive(f.helper), 5000), 'the helper is gone within 5 s all the same');
	t.notOk(fs.existsSync(f.plan.runDir));
	t.notOk(fs.existsSync(f.plan.shmPath));
});

t.test("the helper's SIGTERM stops the hint channel; QEMU runs on", async (t) => {
	const f = await startFront(t, 'echo "qemu $$"; read line; echo "still here"');
	await f.line(/^qemu \d+$/);
	process.kill(f.helper, 'SIGTERM');
	t.ok(await until(() => !processAlive(f.helper), 5000), 'the helper exits');
	t.notOk(fs.existsSync(f.plan.runDir), 'its files are removed');
	t.notOk(fs.existsSync(f.plan.shmPath));
	t.ok(processAlive(f.qemu), 'QEMU runs on');
	f.quit();
	t.equal(await f.line(/^still here$/), 'still here', 'and ends when it will');
});
