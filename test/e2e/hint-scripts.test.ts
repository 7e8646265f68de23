// End to end, bpftrace hint scripts (--pv-hint-script) in the bpftrace image flavour: the
// two example scripts of docs/hint-programs.md give hints the host acts on (a process pinned
// by its name; threads pinned while inside a function, let go when it returns), a script
// that does not compile is said on pvrun's stderr with bpftrace's message, malformed and
// impossible pvhint lines are refused, and other lines reach the event log.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {readEventLog, type LoggedEvent} from '../../src/vm/event-log.js';
import {packageRoot} from '../../src/util/paths.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

const examples = path.join(packageRoot, 'docs', 'examples', 'hint-scripts');

t.test('hint scripts in a guest with bpftrace', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-hint-scripts-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const bad = path.join(dir, 'bad.bt');
	fs.writeFileSync(bad, 'BEGIN { nonsense( }\n');
	const says = path.join(dir, 'says.bt');
	fs.writeFileSync(
		says,
		'BEGIN { printf("pvhint affinity 999999 1\\n"); printf("pvhint affinity 1 7\\n"); printf("pvhint pin 1\\n"); printf("hello %d\\n", 42); exit(); }\n',
	);
	const scripts = [path.join(examples, 'pin-by-name.bt'), path.join(examples, 'phase-uprobe.bt'), bad, says];
	const {guest, logFile} = await bootThroughPvrun(t, {
		flavour: 'bpftrace',
		memoryMiB: 1024,
		run: '/usr/share/pvrun/hint-scripts.sh',
		pvArgs: scripts.flatMap((s) => ['--pv-hint-script', s]),
	});
	await guest.waitFor('hint-scripts: ready', 120_000);
	const events = (): LoggedEvent[] => readEventLog(logFile);
	const said = (name: string, pattern: RegExp) => events().some((e) => e.event === 'script-output' && e['name'] === name && pattern.test(String(e['line'])));
	const attached = await within(
		90_000,
		() => said('pin-by-name.bt', /^Attaching \d+ probes?\.\.\.$/) && said('phase-uprobe.bt', /^Attaching \d+ probes?\.\.\.$/),
		250,
	);
	t.ok(attached >= 0, `both example scripts attached their probes in the guest (${Math.round(attached)} ms after the guest was ready)`);

	await t.test('a script that does not compile: its exit, and bpftrace message on stderr naming the file', async (t) => {
		t.ok((await within(30_000, () => events().some((e) => e.event === 'script' && e['name'] === 'bad.bt' && e['state'] === 'exited'))) >= 0);
		t.match(guest.stderr(), /^pvrun: hint script bad\.bt: bpftrace exited with status 1: bad\.bt:1:\d+(-\d+)?: ERROR: syntax error/m);
	});

	await t.test('pvhint lines that cannot be taken are refused; other lines go to the log', async (t) => {
		t.ok((await within(30_000, () => said('says.bt', /^hello 42$/))) >= 0, 'a plain line reaches the event log');
		const refused = events().filter((e) => e.event === 'script-output' && e['name'] === 'says.bt' && e['stream'] === 'refused');
		t.same(
			refused.map((e) => [e['line'], e['reason']]),
			[
				['pvhint affinity 999999 1', 'no such thread'],
				['pvhint affinity 1 7', 'a CPU the guest does not have'],
				['pvhint pin 1', 'not `pvhint affinity <tid> <cpulist>`'],
			],
		);
		const exit = (): LoggedEvent | undefined => events().find((e) => e.event === 'script' && e['name'] === 'says.bt' && e['state'] === 'exited');
		await within(30_000, () => exit() !== undefined);
		t.match(exit() ?? {}, {status: 0, hints: 0}, 'it ended by itself, having given no hint');
	});

	const {qemuPid, threads} = await vmFromLog(logFile);

	await t.test('pin-by-name.bt: a process called spin gets vCPU 1, and lets it go when it exits', async (t) => {
		t.notOk(hasExclusiveCpu(qemuPid, threads, 1), 'vCPU 1 floats before');
		guest.send('spin 3\n');
		const ms = await within(20_000, () => hasExclusiveCpu(qemuPid, threads, 1), 100);
		t.ok(ms >= 0, `vCPU 1's thread got a host CPU of its own (${Math.round(ms)} ms)`);
		const pinned = events().find((e) => e.event === 'hint' && e['comm'] === 'spin' && e['kind'] === 'set');
		t.same(pinned?.['vcpus'], [1], 'from the script: spin on vCPU 1');
		await guest.waitFor('hint-scripts: spin done', 30_000);
		t.ok(
			(await within(10_000, () => events().some((e) => e.event === 'hint' && e['comm'] === 'spin' && e['kind'] === 'exit'), 100)) >= 0,
			"the thread's exit record",
		);
		t.ok((await within(10_000, () => !hasExclusiveCpu(qemuPid, threads, 1), 100)) >= 0, 'vCPU 1 floats again');
	});

	await t.test('phase-uprobe.bt: a thread inside pvwork_phase has vCPU 1, let go when the function returns', async (t) => {
		guest.send('phases 2\n');
		await guest.waitFor('hint-scripts: phases done', 60_000);
		const hints = (): LoggedEvent[] => events().filter((e) => e.event === 'hint' && e['comm'] === 'pvwork' && e['kind'] === 'set');
		t.ok((await within(10_000, () => hints().filter((e) => String(e['vcpus']) === '0,1').length >= 2, 100)) >= 0, 'released at the end of each phase');
		const entries = hints().filter((e) => String(e['vcpus']) === '1');
		t.ok(entries.length >= 2, `pinned at the start of each phase (${entries.length} phases seen)`);
		t.ok(
			events().some((e) => e.event === 'pin' && e['vcpu'] === 1 && e['comm'] === 'pvwork'),
			'the host gave vCPU 1 a CPU of its own for it',
		);
		t.notOk(
			events().some((e) => e.event === 'script-output' && e['name'] === 'phase-uprobe.bt' && e['stream'] === 'refused'),
			'no hint refused',
		);
	});

	guest.send('end\n');
	t.equal(await guest.exited, 0, 'the guest ends');
	t.match(events().find((e) => e.event === 'script' && e['name'] === 'pin-by-name.bt' && e['state'] === 'started') ?? {}, {pid: Number});
});
