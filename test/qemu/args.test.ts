// QEMU's command-line grammar as pvrun knows it: the table of options without a
// value against the installed QEMU, and the command lines that run no guest.
import {spawnSync} from 'node:child_process';
import t from 'tap';
import {
	guestName,
	passthroughReason,
	qemuFlagOptions,
	qemuOptions,
	qemuValueCount,
	splitOptionList,
	userChoseAccel,
	userSetDebugThreads,
	usesStdio,
	vcpuCount,
} from '../../src/qemu/args.js';
import {libvirtProbe} from '../helpers/command-lines.js';

const qemu = 'qemu-system-x86_64';

/**
 * What the installed QEMU does with `option`, without running anything: QEMU
 * looks every argument up in a first pass over argv before acting on any, and
 * stops at the first unknown one. After a flag that is the first marker, after
 * an option with a value (which swallows the first marker) the second.
 */
function probe(option: string): 'flag' | 'value' | 'unknown' | string {
	const r = spawnSync(qemu, [option, '-pvrun-probe-a', '-pvrun-probe-b'], {encoding: 'utf8', timeout: 10_000});
	const stderr = r.stderr ?? '';
	if (stderr.includes(`${option}: invalid option`)) return 'unknown';
	if (stderr.includes('-pvrun-probe-a: invalid option')) return 'flag';
	if (stderr.includes('-pvrun-probe-b: invalid option')) return 'value';
	return `unexpected (exit ${String(r.status)}): ${stderr.split('\n', 1)[0] ?? ''}`;
}

/** The option names `qemu -help` documents: "-h or -help", "-fda/-fdb file", "--preconfig"... */
function helpOptionNames(help: string): Set<string> {
	const names = new Set<string>();
	for (const line of help.split('\n')) {
		const match = /^(-\S+)(?: or (-\S+))?/.exec(line);
		if (!match) continue;
		for (const spelled of [match[1], match[2]]) {
			for (const part of spelled?.split('/') ?? []) names.add(part.replace(/^--?/, ''));
		}
	}
	return names;
}

const installed = spawnSync(qemu, ['-version'], {encoding: 'utf8'});
const qemuVersion = /version (\d+\.\d+)/.exec(installed.stdout ?? '')?.[1];

t.test(
	'the table of options without a value matches the installed QEMU',
	{skip: installed.error ? `${qemu} is not installed: cannot check the option table against it` : false},
	async (t) => {
		const help = spawnSync(qemu, ['-help'], {encoding: 'utf8'}).stdout ?? '';
		const documented = helpOptionNames(help);
		t.ok(
			documented.size > 100 && documented.has('machine') && documented.has('nographic') && documented.has('preconfig'),
			`-help parsed: ${documented.size} options`,
		);
		const wrong: string[] = [];
		for (const name of documented) {
			const expected = qemuFlagOptions.has(name) ? 'flag' : 'value';
			const actual = probe(`-${name}`);
			if (actual !== expected) wrong.push(`-${name}: QEMU says ${actual}, pvrun's table ${expected}`);
		}
		t.same(wrong, [], 'every option in qemu -help takes a value exactly when pvrun thinks so');
		// Options in the table but not in -help: another target's (-semihosting) or undocumented.
		const unknown: string[] = [];
		for (const name of qemuFlagOptions) {
			if (documented.has(name)) continue;
			const actual = probe(`-${name}`);
			if (actual === 'unknown') unknown.push(name);
			else t.equal(actual, 'flag', `-${name} (not in -help) is a flag`);
		}
		if (qemuVersion === '7.2') t.same(unknown, [], 'QEMU 7.2 knows every option in the table');
		else t.comment(`QEMU ${qemuVersion ?? '?'} does not know: ${unknown.join(' ') || 'none'} (the table is QEMU 7.2's)`);
		t.equal(probe('--nographic'), 'flag', '--x is -x');
		t.equal(probe('--m'), 'value');
		t.equal(probe('-pvrun-no-such-option'), 'unknown', 'the probe tells unknown options apart');
	},
);

t.test('an option takes a value unless it is a known flag; other arguments are disk images', async (t) => {
	for (const arg of ['-nographic', '--nographic', '-S', '-s', '-snapshot', '-daemonize', '-enable-kvm', '--preconfig', '-no-user-config', '-version', '-h'])
		t.equal(qemuValueCount(arg), 0, arg);
	for (const arg of ['-m', '--m', '-machine', '-M', '-append', '-name', '-object', '-drive', '-unknown-future-option', '-'])
		t.equal(qemuValueCount(arg), 1, arg);
	for (const arg of ['disk.img', '', 'none', 'help']) t.equal(qemuValueCount(arg), 0, JSON.stringify(arg));
	const args = ['disk.img', '-m', '512', '-nographic', '-append', '-S', '', '--name', 'vm', '-kernel'];
	t.same(qemuOptions(args), [
		{name: 'm', value: '512', index: 1},
		{name: 'nographic', value: undefined, index: 3},
		{name: 'append', value: '-S', index: 4},
		{name: 'name', value: 'vm', index: 7},
		{name: 'kernel', value: undefined, index: 9},
	]);
});

t.test('QEMU option lists split at single commas; ",," is a comma', async (t) => {
	t.same(splitOptionList('a,b=c,,d,'), ['a', 'b=c,d', '']);
	t.same(splitOptionList(''), ['']);
	t.same(splitOptionList('x,,,help'), ['x,', 'help']);
});

t.test('command lines that run no guest go to QEMU unchanged; guests get the hint channel', async (t) => {
	const probeLine = [...libvirtProbe];
	const unchanged: Array<[string[], RegExp]> = [
		[probeLine, /-machine none runs no guest/],
		[['-machine', 'none'], /none/],
		[['-M', 'none'], /none/],
		[['--machine', 'type=none'], /none/],
		[['-machine', 'accel=tcg,type=none'], /none/],
		[['-M', 'q35', '-M', 'none'], /none/],
		[['-machine', '{"type":"none"}'], /none/],
		[['-version'], /-version only prints/],
		[['--version'], /-version only prints/],
		[['-help'], /-help only prints/],
		[['--help'], /-help/],
		[['-h'], /-h only prints/],
		[['-audio-help'], /-audio-help/],
		[['-m', '512', '-device', 'help'], /-device help only prints/],
		[['-device', 'virtio-net-pci,help'], /-device virtio-net-pci,help/],
		[['-device', 'e1000,?'], /\?/],
		[['-device', 'driver=help'], /driver=help/],
		[['-cpu', 'help'], /-cpu help/],
		[['-cpu', '?'], /-cpu \?/],
		[['-machine', 'help'], /-machine help/],
		[['-M', '?'], /-M \?/],
		[['-machine', 'q35,help'], /help/],
		[['-accel', 'help'], /-accel help/],
		[['-object', 'help'], /-object help/],
		[['-object', 'memory-backend-ram,help'], /help/],
		[['-drive', 'format=help'], /format=help/],
		[['-chardev', 'help'], /help/],
		[['-netdev', 'help'], /help/],
		[['-display', 'help'], /help/],
		[['-d', 'help'], /help/],
		[['-trace', 'enable=help'], /help/],
		[['-dump-vmstate', '/tmp/vmstate.json'], /-dump-vmstate \/tmp\/vmstate.json writes/],
	];
	for (const [args, reason] of unchanged) t.match(passthroughReason(args), reason, args.join(' '));
	const guests: string[][] = [
		[],
		['-m', '512', '-nographic', '-kernel', 'bzImage'],
		['-machine', 'q35'],
		['-machine', 'q35,accel=kvm:tcg'],
		['-machine', 'accel=kvm:tcg'],
		['-M', 'none', '-M', 'q35'], // the later type wins
		['-machine', 'none,,x'], // a machine called "none,x"
		['-append', 'help'],
		['-append', '-version'], // a kernel command line, not QEMU's -version
		['-name', 'help'],
		['-name', 'none'],
		['-k', 'help'],
		['-append', '-M', 'none'], // -M is -append's value, "none" a disk image
		['-device', '{"driver":"help"}'], // JSON has no help form
		['-drive', 'file=help'], // a file called help
		['-device', 'virtio-net-pci,netdev=help'],
		['-cpu', 'helper'],
		['disk.img', 'help'],
	];
	for (const args of guests) t.equal(passthroughReason(args), undefined, args.join(' ') || '(no arguments)');
});

t.test("the guest name comes from -name, not from other options' values", async (t) => {
	t.equal(guestName(['-name', 'vm1']), 'vm1');
	t.equal(guestName(['-name', 'guest=web,debug-threads=on']), 'web');
	t.equal(guestName(['-name', 'a,,b,process=qemu-a']), 'a,b');
	t.equal(guestName(['-name', 'debug-threads=on']), undefined);
	t.equal(guestName(['-name', 'first', '-name', 'debug-threads=on']), 'first', 'QEMU merges -name options');
	t.equal(guestName(['-name', 'first', '-name', 'guest=second']), 'second');
	t.equal(guestName(['-append', '-name', 'x']), undefined);
	t.equal(guestName(['--name', 'gäst ✓']), 'gäst ✓');
	t.equal(guestName([]), undefined);
});

t.test("the terminal is the guest's console when QEMU puts something on stdio", async (t) => {
	const onStdio: string[][] = [
		['-nographic'],
		['-nographic', '-serial', 'file:/tmp/x'],
		['-nodefaults', '-serial', 'stdio'],
		['-nodefaults', '-serial', 'mon:stdio'],
		['-nodefaults', '--serial', 'stdio'],
		['-nodefaults', '-chardev', 'stdio,id=c0,signal=off', '-device', 'isa-serial,chardev=c0'],
		['-nodefaults', '-chardev', 'id=c0,backend=stdio'],
		['-nodefaults', '-monitor', 'stdio'],
		['-nodefaults', '-qmp', 'stdio'],
		['-nodefaults', '-debugcon', 'stdio'],
		['-display', 'curses'],
		['-display', 'curses,charset=CP850'],
		['-curses'],
	];
	for (const args of onStdio) t.ok(usesStdio(args), args.join(' '));
	const notOnStdio: string[][] = [
		[],
		['-nodefaults', '-nographic'],
		['-display', 'none', '-serial', 'file:/tmp/console.log'],
		['-nodefaults', '-serial', 'pty', '-monitor', 'unix:/tmp/m.sock,server=on,wait=off'],
		// Values that merely contain the word: a kernel command line, a file called stdio, a chardev id.
		['-append', 'console=stdio', '-display', 'none'],
		['-display', 'none', '-serial', 'file:stdio'],
		['-display', 'none', '-chardev', 'socket,id=stdio,path=/tmp/s'],
		['-display', 'none', '-name', 'stdio'],
		['-display', 'gtk'],
	];
	for (const args of notOnStdio) t.notOk(usesStdio(args), args.join(' ') || '(nothing)');
});

t.test("what pvrun reads from QEMU's command line comes from options, not from their values", async (t) => {
	t.equal(vcpuCount(['-append', '-smp', '8']), 1, "-smp as -append's value");
	t.equal(vcpuCount(['-name', '-smp', '-smp', '4']), 4);
	t.equal(vcpuCount(['--smp', '3']), 3);
	t.notOk(userChoseAccel(['-append', '-enable-kvm']));
	t.notOk(userChoseAccel(['-name', '-accel', 'tcg']), '"tcg" is a disk image there');
	t.ok(userChoseAccel(['--accel', 'kvm']));
	t.ok(userChoseAccel(['-M', 'q35,accel=kvm']));
	t.notOk(userSetDebugThreads(['-append', '-name', 'debug-threads=on']));
});

t.test('vCPU count from -smp, maxcpus first', async (t) => {
	t.equal(vcpuCount([]), 1);
	t.equal(vcpuCount(['-smp', '4']), 4);
	t.equal(vcpuCount(['-smp', '2,maxcpus=8']), 8);
	t.equal(vcpuCount(['-smp', 'cpus=2']), 2);
	t.equal(vcpuCount(['-smp', 'sockets=2,cores=2,threads=2']), 8);
	t.equal(vcpuCount(['-smp', '1', '-smp', '3']), 3, 'the last -smp wins, as in QEMU');
});

t.test("the user's accelerator and thread names are respected", async (t) => {
	t.ok(userChoseAccel(['-enable-kvm']));
	t.ok(userChoseAccel(['-accel', 'tcg']));
	t.ok(userChoseAccel(['-machine', 'q35,accel=tcg']));
	t.notOk(userChoseAccel(['-machine', 'q35']));
	t.ok(userSetDebugThreads(['-name', 'vm,debug-threads=off']));
	t.notOk(userSetDebugThreads(['-name', 'vm']));
});
