import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {parsePvOptions, splitArgs} from '../../src/cli/pv-options.js';

t.test("--pv- arguments are pvrun's; everything else goes to QEMU verbatim, in order", async (t) => {
	const argv = [
		'-smp',
		'2',
		'--pv-cpus',
		'0-1',
		'-object',
		'{"qom-type":"memory-backend-ram","id":"m","size":1073741824}',
		'--pv-log=/tmp/x.jsonl',
		'-append',
		'console=ttyS0 a="b c"',
		'--pv-off',
	];
	const {pv, qemu} = splitArgs(argv);
	t.same(pv, ['--pv-cpus', '0-1', '--pv-log=/tmp/x.jsonl', '--pv-off']);
	t.same(qemu, ['-smp', '2', '-object', '{"qom-type":"memory-backend-ram","id":"m","size":1073741824}', '-append', 'console=ttyS0 a="b c"']);
	const options = parsePvOptions(pv);
	t.same(options.cpus, [0, 1]);
	t.equal(options.log, '/tmp/x.jsonl');
	t.equal(options.off, true);
});

t.test("--pv- is pvrun's only where a QEMU option could start, never inside a QEMU option's value", async (t) => {
	// Values that look like pvrun's options belong to the QEMU option before them.
	const values = ['-append', '--pv-off', '-name', '--pv-dry-run', '-kernel', '--pv-frobnicate', '-drive', '--pv-cpus', '--machine', '--pv-log=x'];
	t.same(splitArgs(values), {pv: [], qemu: values});
	// After a flag, a disk image or another option's value, --pv- starts pvrun's option.
	t.same(splitArgs(['-nographic', '--pv-off', 'disk.img', '--pv-dry-run', '-m', '512', '--pv-cpus', '0', '-S']), {
		pv: ['--pv-off', '--pv-dry-run', '--pv-cpus', '0'],
		qemu: ['-nographic', 'disk.img', '-m', '512', '-S'],
	});
	t.same(
		splitArgs(['', '--pv-off', '--nographic', '--pv-log', '-odd-file-name']),
		{pv: ['--pv-off', '--pv-log', '-odd-file-name'], qemu: ['', '--nographic']},
		'an empty argument is a disk image to QEMU',
	);
	t.same(splitArgs(['-m']), {pv: [], qemu: ['-m']}, 'a QEMU option missing its value is left for QEMU to report');
	t.same(splitArgs(['-append', 'x', '--pv-off']).pv, ['--pv-off']);
	t.throws(() => splitArgs(['-S', '--pv-frobnicate']), {message: /unknown pvrun option --pv-frobnicate/, exitCode: 2}, 'unknown --pv- in option position');
	t.throws(() => splitArgs(['-m', '512', '--pv-of']), {message: 'unknown pvrun option --pv-of; did you mean --pv-off? (see pvrun --help)', exitCode: 2});
	t.throws(
		() => splitArgs(['--pv-cpu', '0']),
		{message: 'unknown pvrun option --pv-cpu; did you mean --pv-cpus? (see pvrun --help)', exitCode: 2},
		'a typo gets the nearest option',
	);
	t.throws(() => splitArgs(['--pv-guestcpu=5']), {message: /did you mean --pv-guest-cpu\?/, exitCode: 2});
	t.throws(() => splitArgs(['--pv-frobnicate']), {message: 'unknown pvrun option --pv-frobnicate (see pvrun --help)'}, 'no suggestion when nothing is near');
});

t.test('bad pvrun options are one clear error with exit code 2', async (t) => {
	t.throws(() => splitArgs(['--pv-frobnicate']), {message: /unknown pvrun option --pv-frobnicate/, exitCode: 2});
	t.throws(() => splitArgs(['--pv-cpus']), {message: /--pv-cpus needs a value/, exitCode: 2});
	t.throws(() => parsePvOptions(['--pv-cpus', '3-1']), {name: 'UsageError', message: /^--pv-cpus: invalid CPU list "3-1"/, exitCode: 2});
	for (const bad of ['abc', '', '-1', '1-0', '0-100000', '0,,1', '2-'])
		t.throws(() => parsePvOptions([`--pv-cpus=${bad}`]), {name: 'UsageError', message: /^--pv-cpus: invalid CPU list/, exitCode: 2}, `--pv-cpus=${bad}`);
	t.throws(() => parsePvOptions(['--pv-accel', 'xen']), {message: /Invalid values/, exitCode: 2});
	t.throws(() => parsePvOptions(splitArgs(['--pv-off=yes']).pv), {message: /^Option '--pv-off' does not take an argument \(see pvrun --help\)$/, exitCode: 2});
	t.equal(parsePvOptions(['--pv-qemu', '/a/qemu', '--pv-qemu=/b/qemu']).qemu, '/b/qemu', 'given twice, the last one counts');
});

t.test('--pv-share: a whole weight from 1 to 1000', async (t) => {
	t.equal(parsePvOptions([]).share, 1, 'default 1');
	t.equal(parsePvOptions(['--pv-share', '1000']).share, 1000);
	for (const bad of ['0', '1001', '1.5', 'abc', '', '-2', '1e2'])
		t.throws(
			() => parsePvOptions([`--pv-share=${bad}`]),
			{name: 'UsageError', message: /^--pv-share takes a whole number from 1 to 1000, not /, exitCode: 2},
			`--pv-share=${bad}`,
		);
});

t.test('--pv-guest-cpu: a share of one CPU from 0.5 to 100 %, or off', async (t) => {
	t.equal(parsePvOptions([]).guestCpuPercent, 5, 'default 5');
	t.equal(parsePvOptions(['--pv-guest-cpu', '2.5']).guestCpuPercent, 2.5);
	t.equal(parsePvOptions(splitArgs(['--pv-guest-cpu=100%']).pv).guestCpuPercent, 100);
	t.equal(parsePvOptions(['--pv-guest-cpu', 'off']).guestCpuPercent, 0, 'off: no budget');
	for (const bad of ['0', '0.4', '101', 'abc', '', '-5', '5 %', '1e1'])
		t.throws(
			() => parsePvOptions([`--pv-guest-cpu=${bad}`]),
			{name: 'UsageError', message: /^--pv-guest-cpu takes a percentage of one CPU from 0.5 to 100, or off, not /, exitCode: 2},
			`--pv-guest-cpu=${bad}`,
		);
});

t.test('--pv-fast-path on|off, and a value that looks like an option is a value', async (t) => {
	t.equal(parsePvOptions([]).fastPath, true, 'on by default');
	t.equal(parsePvOptions(['--pv-fast-path', 'off']).fastPath, false);
	t.equal(parsePvOptions(['--pv-fast-path=on']).fastPath, true);
	t.throws(() => parsePvOptions(['--pv-fast-path', 'maybe']), {message: /Given: "maybe", Choices: "on", "off"/, exitCode: 2});
	// Taken as the value (not as short flags -n -o -d ...), so the error names it.
	t.throws(() => parsePvOptions(splitArgs(['--pv-fast-path', '-nodefaults']).pv), {message: /Given: "-nodefaults"/, exitCode: 2});
	t.equal(parsePvOptions(['--pv-log', '-odd.log']).log, '-odd.log', 'a log file whose name starts with a dash');
});

t.test('--pv-placement auto|priority|cpuset|threads; priority and --pv-cs act exclude each other', async (t) => {
	t.equal(parsePvOptions([]).placement, 'auto');
	for (const p of ['priority', 'cpuset', 'threads'] as const) t.equal(parsePvOptions(['--pv-placement', p]).placement, p);
	t.equal(parsePvOptions(['--pv-placement', 'priority', '--pv-cs', 'observe']).placement, 'priority', 'observing sets no class');
	t.throws(() => parsePvOptions(['--pv-placement', 'priority', '--pv-cs', 'act']), {
		name: 'UsageError',
		message: "--pv-placement priority and --pv-cs act both set the vCPU threads' scheduling class: use one of them (see docs/placement.md)",
		exitCode: 2,
	});
	t.throws(() => parsePvOptions(['--pv-placement', 'weights']), {message: /Choices: "auto", "priority", "cpuset", "threads"/, exitCode: 2});
});

t.test('--pv-cs off|observe|act, --pv-cs-boost', async (t) => {
	t.equal(parsePvOptions([]).cs, 'off', 'off by default');
	t.equal(parsePvOptions(['--pv-cs', 'observe']).cs, 'observe');
	t.equal(parsePvOptions(['--pv-cs', 'act']).cs, 'act');
	t.equal(parsePvOptions(splitArgs(['--pv-cs=off', '-m', '512']).pv).cs, 'off');
	t.same(parsePvOptions([]).csBoost, {maxUs: 1000, sharePct: 10, windowMs: 100, paybackPct: 100}, "act's bounds by default");
	t.same(
		parsePvOptions(['--pv-cs-boost', 'payback=0%,max=500us']).csBoost,
		{maxUs: 500, sharePct: 10, windowMs: 100, paybackPct: 0},
		'keys in any order, with or without their unit; the rest keep their defaults',
	);
	t.same(parsePvOptions(splitArgs(['--pv-cs-boost=share=5,window=50ms']).pv).csBoost, {maxUs: 1000, sharePct: 5, windowMs: 50, paybackPct: 100});
	for (const bad of ['max=1ms', 'share=60%', 'max=5us', 'speed=1', 'max=', 'max=1000us,,share=1%', 'window=-1ms'])
		t.throws(
			() => parsePvOptions(['--pv-cs-boost', bad]),
			{name: 'UsageError', message: /^--pv-cs-boost: ".*" is not one of max=10-100000us, share=0-50%, window=10-10000ms, payback=0-1000%/, exitCode: 2},
			bad,
		);
	t.throws(() => parsePvOptions(['--pv-cs', 'on']), {message: /Given: "on", Choices: "off", "observe", "act"/, exitCode: 2});
	t.throws(() => splitArgs(['--pv-cs']), {message: /--pv-cs needs a value/, exitCode: 2});

	t.test('--pv-cs-feedback auto|bpf|proc', async (t) => {
		t.equal(parsePvOptions([]).csFeedback, 'auto', 'auto by default');
		t.equal(parsePvOptions(['--pv-cs-feedback', 'proc']).csFeedback, 'proc');
		t.equal(parsePvOptions(splitArgs(['--pv-cs-feedback=bpf', '-m', '512']).pv).csFeedback, 'bpf');
		t.throws(() => parsePvOptions(['--pv-cs-feedback', 'ebpf']), {message: /Given: "ebpf", Choices: "auto", "bpf", "proc"/, exitCode: 2});
	});
});

t.test('--pv-hint-script FILE, repeatable: the scripts read whole', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-pv-scripts-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	fs.writeFileSync(path.join(dir, 'a.bt'), 'BEGIN { exit(); }');
	fs.writeFileSync(path.join(dir, 'b.bt'), 'END {}');
	t.equal(parsePvOptions([]).hintScripts, undefined, 'none by default');
	const {pv} = splitArgs(['--pv-hint-script', path.join(dir, 'a.bt'), '-m', '512', `--pv-hint-script=${path.join(dir, 'b.bt')}`]);
	t.same(parsePvOptions(pv).hintScripts, [
		{name: 'a.bt', text: 'BEGIN { exit(); }'},
		{name: 'b.bt', text: 'END {}'},
	]);
	t.throws(() => parsePvOptions(['--pv-hint-script', path.join(dir, 'c.bt')]), {
		name: 'UsageError',
		message: /--pv-hint-script .*c\.bt: cannot read it: ENOENT/,
		exitCode: 2,
	});
});
