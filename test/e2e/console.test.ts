// End to end, the console in a real terminal (tmux): with -nographic, Ctrl-C
// and Ctrl-A x do to a VM under pvrun what they do to plain QEMU, typed input
// reaches the guest, and pvrun writes none of its decision summaries into the
// guest's console. Each case runs plain qemu-system-x86_64 first, in the same
// terminal set-up, and asserts pvrun ends the same way (exit status, QEMU's
// last words), then that nothing of pvrun's is left.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {pvrunCommand, readyLine} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {chooseAccel} from '../../src/qemu/accel.js';
import {readEventLog} from '../../src/vm/event-log.js';
import {within} from '../helpers/pvrun-vm.js';
import {childrenOf, helperOf, killIfRunning, leftovers, running} from '../helpers/host-view.js';
import {Terminal} from '../helpers/terminal.js';

/** The default guest on 2 vCPUs with kernel command line `append`, then `rest` (where its console goes). */
async function guestArgs(append: string, ...rest: string[]): Promise<string[]> {
	const image = await ensureImage();
	// prettier-ignore
	return [
		'-nodefaults', '-no-user-config', ...chooseAccel('auto').args, '-smp', '2', '-m', '512',
		'-kernel', image.kernel, '-initrd', image.initrd, '-append', append, ...rest, '-no-reboot',
	];
}

/** The default guest with its console on the terminal (-nographic), the same for QEMU and pvrun. */
function consoleVm(serial: 'stdio' | 'mon:stdio'): Promise<string[]> {
	return guestArgs('console=ttyS0 quiet panic=-1 no_timer_check', '-nographic', '-serial', serial);
}

const launchers = [
	{name: 'qemu-system-x86_64', command: (args: string[]) => ['qemu-system-x86_64', ...args]},
	{name: 'pvrun', command: (args: string[], log: string) => [...pvrunCommand('--pv-log', log), ...args]},
];

interface Run {
	terminal: Terminal;
	/** pvrun's helper (0 for plain QEMU). */
	pvrunPid: number;
	/** QEMU: the shell's child (pvrun exec's QEMU in place). */
	qemuPid: number;
}

/** The shell's child once it runs QEMU (under pvrun, once pvrun has exec'd it). */
function qemuChild(shellPid: number): number {
	const pid = childrenOf(shellPid)[0] ?? 0;
	try {
		return pid > 0 && fs.readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('qemu-system') ? pid : 0;
	} catch {
		return 0;
	}
}

/** Start `launcher` on `args` in a terminal and wait for the guest to be ready (and pvrun's agent, under pvrun). */
async function boot(t: Test, launcher: (typeof launchers)[number], args: string[]): Promise<Run> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-console-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const log = path.join(dir, 'events.jsonl');
	const terminal = await Terminal.run(t, launcher.command(args, log));
	const isPvrun = launcher.name === 'pvrun';
	let qemuPid = 0;
	await within(10_000, () => (qemuPid = qemuChild(terminal.shellPid)) > 0);
	t.teardown(() => killIfRunning(qemuPid));
	t.ok(qemuPid > 0, `${launcher.name}: QEMU runs, the shell's child`);
	const helper = isPvrun ? helperOf(qemuPid) : 0;
	if (isPvrun) t.ok(helper > 0, "pvrun's helper runs beside it");
	t.ok(await terminal.waitFor(readyLine, 120_000), `${launcher.name}: the guest is ready on the terminal`, {screen: await terminal.screen()});
	const events = () => readEventLog(log).map((e) => e.event);
	if (isPvrun) t.ok((await within(60_000, () => events().includes('program'))) >= 0, 'pvrun: the hint channel is up (event log)');
	// A hint acted on while the guest's console is on the terminal: the typed command runs in the guest's shell.
	await terminal.keys('/usr/share/pvrun/pin-busy.sh 0x2 30 &', 'Enter');
	t.ok(await terminal.waitFor('pin-busy: pinned', 30_000), `${launcher.name}: typed input reached the guest's shell`);
	if (isPvrun) {
		t.ok((await within(10_000, () => events().includes('pin'))) >= 0, 'pvrun: the hint pinned vCPU 1 (event log)');
		// Summaries are for terminals that are not the guest's console: here they would cut the guest's lines.
		t.notMatch(await terminal.screen(), /pvrun: /, "pvrun: none of pvrun's lines on the guest's console", {screen: await terminal.screen()});
	}
	return {terminal, pvrunPid: helper, qemuPid};
}

/** After a run: QEMU gone; pvrun's helper and files gone (it cleans up once QEMU is gone: up to 5 s). */
async function assertNothingLeft(t: Test, run: Run, name: string): Promise<void> {
	t.notOk(running(run.qemuPid), `${name}: QEMU is gone`);
	if (run.pvrunPid) {
		await within(5000, () => !running(run.pvrunPid) && leftovers(run.qemuPid).length === 0);
		t.notOk(running(run.pvrunPid), "pvrun's helper is gone");
		t.same(leftovers(run.qemuPid), [], 'no /dev/shm file or socket directory of pvrun left');
	}
}

t.test('Ctrl-C on -nographic -serial stdio stops the VM, under pvrun as under QEMU', async (t) => {
	const args = await consoleVm('stdio');
	const seen: Array<{status: number | undefined; lastWords: boolean}> = [];
	for (const launcher of launchers) {
		const run = await boot(t, launcher, args);
		await run.terminal.keys('C-c');
		const status = await run.terminal.waitEnd(20_000);
		t.not(status, undefined, `${launcher.name}: Ctrl-C ended it`);
		const lastWords = (await run.terminal.screen()).includes('qemu-system-x86_64: terminating on signal 2');
		t.comment(`${launcher.name}: exit status ${status}, QEMU said "terminating on signal 2": ${lastWords}`);
		seen.push({status, lastWords});
		await assertNothingLeft(t, run, launcher.name);
	}
	const [qemu, pvrun] = seen;
	t.ok(qemu?.lastWords, 'QEMU stops on the SIGINT the terminal sends');
	t.same(pvrun, qemu, 'pvrun ends exactly as plain QEMU: same exit status, same message');
});

t.test('-serial mon:stdio: Ctrl-C goes to the guest, Ctrl-A x quits, under pvrun as under QEMU', async (t) => {
	const args = await consoleVm('mon:stdio');
	const seen: Array<{survivedCtrlC: boolean; status: number | undefined; lastWords: boolean}> = [];
	for (const launcher of launchers) {
		const run = await boot(t, launcher, args);
		await run.terminal.keys('C-c');
		await new Promise((r) => setTimeout(r, 1500));
		const survivedCtrlC = (await run.terminal.status()) === undefined && running(run.qemuPid) && (await run.terminal.screen()).includes('^C');
		t.ok(survivedCtrlC, `${launcher.name}: Ctrl-C went to the guest (its shell echoes ^C), the VM runs`);
		await run.terminal.keys('C-a', 'x');
		const status = await run.terminal.waitEnd(20_000);
		t.not(status, undefined, `${launcher.name}: Ctrl-A x ended it`);
		const lastWords = (await run.terminal.screen()).includes('QEMU: Terminated');
		t.comment(`${launcher.name}: exit status ${status}, "QEMU: Terminated": ${lastWords}`);
		seen.push({survivedCtrlC, status, lastWords});
		await assertNothingLeft(t, run, launcher.name);
	}
	const [qemu, pvrun] = seen;
	t.ok(qemu?.lastWords, 'QEMU quits on Ctrl-A x');
	t.same(pvrun, qemu, 'pvrun behaves exactly as plain QEMU');
});

t.test("on a terminal that is not the guest's console, pvrun summarises each decision there", async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-console-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const serial = path.join(dir, 'serial.log');
	const args = await guestArgs(
		'console=ttyS0 quiet panic=-1 no_timer_check pvrun.run=/usr/share/pvrun/pin-busy.sh,0x2,2',
		'-display',
		'none',
		'-serial',
		`file:${serial}`,
	);
	const terminal = await Terminal.run(t, [...pvrunCommand(), ...args]);
	let qemuPid = 0;
	await within(10_000, () => (qemuPid = qemuChild(terminal.shellPid)) > 0);
	t.ok(qemuPid > 0, 'pvrun became QEMU');
	t.teardown(() => killIfRunning(qemuPid));
	const pvrunPid = helperOf(qemuPid);
	t.equal(await terminal.waitEnd(180_000), 0, 'the guest ran its command and powered off: status 0');
	const screen = await terminal.screen();
	t.match(screen, /pvrun: affinity hints on/, 'the channel coming up is summarised', {screen});
	t.match(screen, /pvrun: vCPU 1 → CPU \d+ exclusive/, 'the pin is summarised in one line', {screen});
	t.match(screen, /pvrun: vCPU 1 floats on CPUs/, 'and the release', {screen});
	t.match(fs.readFileSync(serial, 'utf8'), /pin-busy: done/, "the guest's console went to its file");
	await assertNothingLeft(t, {terminal, pvrunPid, qemuPid}, 'pvrun');
});
