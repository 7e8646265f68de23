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

t.test('bad pvrun options are one clear error with exit code 2', async (t) => {
	t.throws(() => splitArgs(['--pv-frobnicate']), {message: /unknown pvrun option --pv-frobnicate/, exitCode: 2});
	t.throws(() => splitArgs(['--pv-cpus']), {message: /--pv-cpus needs a value/, exitCode: 2});
	t.throws(() => parsePvOptions(['--pv-cpus', '3-1']), {name: 'PvrunError'});
	t.throws(() => parsePvOptions(['--pv-accel', 'xen']), {message: /Invalid values/, exitCode: 2});
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
	const plan = planVm(user, {accel: 'auto', off: false, dryRun: false, qemu: 'qemu-system-x86_64'});
	t.same(plan.args.slice(0, user.length), user, 'user arguments first, unchanged');
	const added = plan.args.slice(user.length);
	t.notOk(added.includes('-accel'), 'no accelerator added when the user chose one');
	t.same(added.slice(0, 2), ['-name', 'debug-threads=on']);
	const ids = added.flatMap((a) => [...a.matchAll(/(?:^|,)id=([^,]+)/g)].map((m) => m[1] ?? ''));
	t.ok(ids.length >= 4 && ids.every((id) => id.startsWith(`${plan.id}-`)), `every added id is pvrun's own: ${ids.join(' ')}`);
	t.match(plan.shmPath, new RegExp(`^/dev/shm/${plan.id}$`));
	t.equal(plan.nrVcpus, 2);
});
