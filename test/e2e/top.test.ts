// End to end, `pvrun top` in a real terminal (tmux) beside a VM whose guest pins a busy
// process to vCPU 1: the live view shows vCPU 1 on a CPU of its own, busy, and the pin among
// the decisions; it keeps to a small terminal when resized, and q ends it with the terminal as
// it was. Piped, it prints one frame and ends.
import {execa} from 'execa';
import t from 'tap';
import {pvrunCommand} from '../../src/guest/boot.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';
import {Terminal} from '../helpers/terminal.js';

const [node = 'node', ...cli] = pvrunCommand();

t.test('pvrun top: the live view of a VM whose guest pins a busy process, in a terminal; q quits', async (t) => {
	const {guest, logFile} = await bootThroughPvrun(t, {run: '/usr/share/pvrun/pin-busy.sh,0x2,15,1'});
	await guest.waitFor('pin-busy: pinned', 90_000);
	const {qemuPid, threads} = await vmFromLog(logFile);
	t.ok((await within(5000, () => hasExclusiveCpu(qemuPid, threads, 1))) >= 0, 'vCPU 1 has a CPU of its own');

	// Only this VM: tests beside this one run VMs of their own.
	const terminal = await Terminal.run(t, [node, ...cli, 'top', String(qemuPid), '-d', '0.5'], 100, 30);
	const row = (screen: string[], vcpu: number): string => screen.find((l) => new RegExp(`^ +${vcpu} +${threads[vcpu]} `).test(l)) ?? '';
	let screen: string[] = [];
	const shown = await within(
		10_000,
		async () => {
			screen = await terminal.visible();
			return /^ +1 +\d+ +\d+ +excl +\d+ +[\d.]+ /.test(row(screen, 1)) && screen.some((l) => / pin +vCPU 1 → CPU \d+ exclusive \(guest thread \d+ /.test(l));
		},
		250,
	);
	t.ok(shown >= 0, `the view shows vCPU 1 on a CPU of its own, and the pin among the decisions:\n${screen.join('\n')}`);
	t.match(screen[0], /^pvrun top {2}\d\d:\d\d:\d\d {2}host, \d+% busy {2}1 VM {2}q: quit/, 'the host first, and how to quit');
	t.ok(
		screen.some((l) => l.startsWith('pvrun-') && l.includes(' running ') && l.includes(`QEMU ${qemuPid}`)),
		'the VM, running',
	);
	const busy = Number(/ ([\d.]+) +[\d.]+$/.exec(row(screen, 1))?.[1] ?? -1);
	t.ok(busy > 20, `vCPU 1's thread is busy (the guest's busy process): ${busy} % of a CPU`);
	t.comment(`pvrun top, 100x30:\n${screen.filter((l) => l.trim()).join('\n')}`);

	await terminal.resize(40, 8);
	let small: string[] = [];
	const fitted = await within(
		5000,
		async () => {
			small = (await terminal.visible()).filter((l, i, all) => i < all.length - 1 || l !== '');
			return small.length <= 8 && small.some((l) => l.length === 40 && l.endsWith('…')) && small.every((l) => [...l].length <= 40);
		},
		250,
	);
	t.ok(fitted >= 0, `resized to 40x8, it keeps to it, long lines cut:\n${small.join('\n')}`);

	await terminal.keys('q');
	t.equal(await terminal.waitEnd(5000), 0, 'q ends it, exit 0');
	const after = (await terminal.screen()).split('\n');
	t.notOk(
		after.some((l) => l.startsWith('pvrun top ')),
		'the terminal is as it was: the view was on the alternate screen',
	);

	const piped = await execa(node, [...cli, 'top', String(qemuPid), '-d', '0.3'], {reject: false});
	t.equal(piped.exitCode, 0, piped.stderr);
	const lines = piped.stdout.split('\n');
	t.equal(lines.filter((l) => l.startsWith('pvrun top ')).length, 1, 'piped: one frame');
	t.ok(
		lines.some((l) => l.includes(`QEMU ${qemuPid}`)),
		'of the VM',
	);
	t.notOk(piped.stdout.includes('\u001b'), 'and no escape sequence');
});
