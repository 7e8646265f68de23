import t from 'tap';
import {parsePvOptions, splitArgs, userChoseAccel, userSetDebugThreads, vcpuCount} from '../../src/cli/pv-options.js';
import {planVm} from '../../src/vm/launch.js';

t.test('--pv- arguments are pvrun\'s; everything else goes to QEMU verbatim, in order', async (t) => {
	const argv = ['-smp', '2', '--pv-cpus', '0-1', '-object', '{"qom-type":"memory-backend-ram","id":"m","size":1073741824}', '--pv-log=/tmp/x.jsonl', '-append', 'console=ttyS0 a="b c"', '--pv-off'];
	const {pv, qemu} = splitArgs(argv);
	t.same(pv, ['--pv-cpus', '0-1', '--pv-log=/tmp/x.jsonl', '--pv-off']);
	t.same(qemu, ['-smp', '2', '-object', '{"qom-type":"memory-backend-ram","id":"m","size":1073741824}', '-append', 'console=ttyS0 a="b c"']);
	const options = parsePvOptions(pv);
	t.same(options.cpus, [0, 1]);
	t.equal(options.log, '/tmp/x.jsonl');
	t.equal(options.off, true);
});

t.test('--pv- is pvrun\'s only where a QEMU option could start, never inside a QEMU option\'s value', async (t) => {
	// Values that look like pvrun's options belong to the QEMU option before them.
	const values = ['-append', '--pv-off', '-name', '--pv-dry-run', '-kernel', '--pv-frobnicate', '-drive', '--pv-cpus', '--machine', '--pv-log=x'];
	t.same(splitArgs(values), {pv: [], qemu: values});
	// After a flag, a disk image or another option's value, --pv- starts pvrun's option.
	t.same(splitArgs(['-nographic', '--pv-off', 'disk.img', '--pv-dry-run', '-m', '512', '--pv-cpus', '0', '-S']), {
		pv: ['--pv-off', '--pv-dry-run', '--pv-cpus', '0'],
		qemu: ['-nographic', 'disk.img', '-m', '512', '-S'],
	});
	t.same(splitArgs(['', '--pv-off', '--nographic', '--pv-log', '-odd-file-name']), {pv: ['--pv-off', '--pv-log', '-odd-file-name'], qemu: ['', '--nographic']}, 'an empty argument is a disk image to QEMU');
	t.same(splitArgs(['-m']), {pv: [], qemu: ['-m']}, 'a QEMU option missing its value is left for QEMU to report');
	t.same(splitArgs(['-append', 'x', '--pv-off']).pv, ['--pv-off']);
	t.throws(() => splitArgs(['-S', '--pv-frobnicate']), {message: /unknown pvrun option --pv-frobnicate/, exitCode: 2}, 'unknown --pv- in option position');
	t.throws(() => splitArgs(['-m', '512', '--pv-of']), {message: /unknown pvrun option --pv-of /, exitCode: 2});
});

t.test('what pvrun reads from QEMU\'s command line comes from options, not from their values', async (t) => {
	t.equal(vcpuCount(['-append', '-smp', '8']), 1, '-smp as -append\'s value');
	t.equal(vcpuCount(['-name', '-smp', '-smp', '4']), 4);
	t.equal(vcpuCount(['--smp', '3']), 3);
	t.notOk(userChoseAccel(['-append', '-enable-kvm']));
	t.notOk(userChoseAccel(['-name', '-accel', 'tcg']), '"tcg" is a disk image there');
	t.ok(userChoseAccel(['--accel', 'kvm']));
	t.ok(userChoseAccel(['-M', 'q35,accel=kvm']));
	t.notOk(userSetDebugThreads(['-append', '-name', 'debug-threads=on']));
});

t.test('bad pvrun options are one clear error with exit code 2', async (t) => {
	t.throws(() => splitArgs(['--pv-frobnicate']), {message: /unknown pvrun option --pv-frobnicate/, exitCode: 2});
	t.throws(() => splitArgs(['--pv-cpus']), {message: /--pv-cpus needs a value/, exitCode: 2});
	t.throws(() => parsePvOptions(['--pv-cpus', '3-1']), {name: 'PvrunError'});
	t.throws(() => parsePvOptions(['--pv-accel', 'xen']), {message: /Invalid values/, exitCode: 2});
	t.throws(() => parsePvOptions(splitArgs(['--pv-off=yes']).pv), {message: /^Option '--pv-off' does not take an argument \(see pvrun --help\)$/, exitCode: 2});
	t.equal(parsePvOptions(['--pv-qemu', '/a/qemu', '--pv-qemu=/b/qemu']).qemu, '/b/qemu', 'given twice, the last one counts');
});

t.test('vCPU count from -smp, maxcpus first', async (t) => {
	t.equal(vcpuCount([]), 1);
	t.equal(vcpuCount(['-smp', '4']), 4);
	t.equal(vcpuCount(['-smp', '2,maxcpus=8']), 8);
	t.equal(vcpuCount(['-smp', 'cpus=2']), 2);
	t.equal(vcpuCount(['-smp', 'sockets=2,cores=2,threads=2']), 8);
	t.equal(vcpuCount(['-smp', '1', '-smp', '3']), 3, 'the last -smp wins, as in QEMU');
});

t.test('the user\'s accelerator and thread names are respected', async (t) => {
	t.ok(userChoseAccel(['-enable-kvm']));
	t.ok(userChoseAccel(['-accel', 'tcg']));
	t.ok(userChoseAccel(['-machine', 'q35,accel=tcg']));
	t.notOk(userChoseAccel(['-machine', 'q35']));
	t.ok(userSetDebugThreads(['-name', 'vm,debug-threads=off']));
	t.notOk(userSetDebugThreads(['-name', 'vm']));
});

t.test('pvrun\'s additions come after the user\'s arguments, with ids of its own', async (t) => {
	const user = ['-name', 'vm', '-smp', '2', '-accel', 'tcg', '-device', 'virtio-serial-pci,id=vser0'];
	const plan = planVm(user, {accel: 'auto', off: false, fastPath: true, dryRun: false, qemu: 'qemu-system-x86_64', agentWaitS: 60});
	t.same(plan.args.slice(0, user.length), user, 'user arguments first, unchanged');
	const added = plan.args.slice(user.length);
	t.notOk(added.includes('-accel'), 'no accelerator added when the user chose one');
	t.same(added.slice(0, 2), ['-name', 'debug-threads=on']);
	const ids = added.flatMap((a) => [...a.matchAll(/(?:^|,)id=([^,]+)|"id":"([^"]+)"/g)].map((m) => m[1] ?? m[2] ?? ''));
	t.ok(ids.length >= 6 && ids.every((id) => id.startsWith('pvrun-')), `every added id is pvrun's own: ${ids.join(' ')}`);
	t.match(plan.shmPath, new RegExp(`^/dev/shm/${plan.id}$`));
	t.equal(plan.nrVcpus, 2);
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
