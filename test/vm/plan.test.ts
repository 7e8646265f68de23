// planVm, a pure step: the same arguments, configuration and host facts give
// the same plan. The user's arguments stay first and unchanged, pvrun's come
// after them with ids of its own; for a QEMU that daemonizes, where its pid
// will be read from.
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {kickPortName} from '../../src/agent/protocol.js';
import {planVm} from '../../src/vm/plan.js';
import type {HostFacts} from '../../src/vm/probe.js';
import {vmConfig} from '../helpers/vm-config.js';

const options = vmConfig({accel: 'tcg'});
const owner = {pid: 4242, cwd: '/srv/vm'};
const facts: HostFacts = {ownCpus: [0, 1], accel: {accel: 'tcg', args: ['-accel', 'tcg,thread=multi'], reason: 'TCG as requested'}, fastPath: true};

t.test('without -daemonize: no pidfile business', async (t) => {
	const user = ['-m', '512', '-pidfile', 'q.pid'];
	const plan = planVm(user, options, facts, os.tmpdir(), owner);
	t.equal(plan.daemonize, false);
	t.equal(plan.pidFile, undefined);
	t.same(plan.qemuArgs, user);
	t.same(plan.args.slice(0, user.length), user, "the user's arguments first, unchanged");
	t.equal(plan.args.filter((a) => a === '-pidfile').length, 1, 'no -pidfile added');
	t.match(plan.id, /^pvrun-4242-[0-9a-f]{6}$/, "named after the owner's pid");
	t.equal(plan.runDir, path.join(os.tmpdir(), plan.id));
});

t.test('-daemonize without -pidfile: pvrun adds one in its run directory, last', async (t) => {
	const user = ['-m', '512', '-daemonize', '-display', 'none'];
	const plan = planVm(user, options, facts, os.tmpdir(), owner);
	t.equal(plan.daemonize, true);
	t.equal(plan.pidFile, path.join(plan.runDir, 'qemu.pid'));
	t.same(plan.args.slice(0, user.length), user);
	t.same(plan.args.slice(-2), ['-pidfile', plan.pidFile]);
});

t.test("-daemonize with the user's -pidfile: QEMU's last one, relative to the user's directory", async (t) => {
	for (const spelling of ['-daemonize', '--daemonize']) {
		const user = ['-pidfile', 'first.pid', spelling, '--pidfile', 'run/qemu.pid'];
		const plan = planVm(user, options, facts, os.tmpdir(), owner);
		t.equal(plan.daemonize, true, spelling);
		t.equal(plan.pidFile, '/srv/vm/run/qemu.pid');
		t.equal(plan.args.filter((a) => a.endsWith('pidfile')).length, 2, 'nothing added');
	}
});

t.test("'-daemonize' as an option's value is not the option", async (t) => {
	const plan = planVm(['-append', '-daemonize', '-name', 'x'], options, facts, os.tmpdir(), owner);
	t.equal(plan.daemonize, false);
});

t.test('the kick port is added when the fast path can run, and not with --pv-fast-path off', async (t) => {
	const on = planVm(['-m', '512'], options, facts, os.tmpdir(), owner);
	t.equal(on.kickSocket, path.join(on.runDir, 'kick.sock'));
	t.ok(on.args.includes(`socket,id=pvrun-kick,path=${on.kickSocket},server=on,wait=off`), 'its chardev');
	t.ok(
		on.args.includes(JSON.stringify({driver: 'virtserialport', id: 'pvrun-kport', bus: 'pvrun-vser.0', chardev: 'pvrun-kick', name: kickPortName})),
		'its port, on the agent channel',
	);
	t.equal(on.fastPathOff, undefined);
	const off = planVm(['-m', '512'], options, {...facts, fastPath: '--pv-fast-path off'}, os.tmpdir(), owner);
	t.equal(off.kickSocket, undefined);
	t.notOk(
		off.args.some((a) => a.includes('-kick')),
		'no kick port',
	);
	t.equal(off.fastPathOff, '--pv-fast-path off', 'and the reason, for the log');
});

t.test("pvrun's additions come after the user's arguments, with ids of its own", async (t) => {
	const user = ['-name', 'vm', '-smp', '2', '-accel', 'tcg', '-device', 'virtio-serial-pci,id=vser0'];
	const plan = planVm(user, options, facts, os.tmpdir(), owner);
	t.same(plan.args.slice(0, user.length), user, 'user arguments first, unchanged');
	const added = plan.args.slice(user.length);
	t.notOk(added.includes('-accel'), 'no accelerator added when the user chose one');
	t.same(added.slice(0, 2), ['-name', 'debug-threads=on']);
	const ids = added.flatMap((a) => [...a.matchAll(/(?:^|,)id=([^,]+)|"id":"([^"]+)"/g)].map((m) => m[1] ?? m[2] ?? ''));
	t.ok(ids.length >= 6 && ids.every((id) => id.startsWith('pvrun-')), `every added id is pvrun's own: ${ids.join(' ')}`);
	t.match(plan.shmPath, new RegExp(`^/dev/shm/${plan.id}$`));
	t.equal(plan.nrVcpus, 2);
});

t.test('a plan is pure: the same input, the same plan; the CPUs come from the facts', async (t) => {
	const user = ['-smp', '2', '-m', '512'];
	const one = planVm(user, options, facts, '/run/x', {...owner, nonce: 'abcdef'});
	t.same(planVm(user, options, facts, '/run/x', {...owner, nonce: 'abcdef'}), one, 'planned twice: the same');
	t.equal(one.id, 'pvrun-4242-abcdef');
	t.same(one.allowed, [0, 1], "every CPU pvrun may use (the facts'), without --pv-cpus");
	t.ok(one.args.includes('tcg,thread=multi'), 'the accelerator the facts chose');
	t.equal(one.accelNote, 'TCG as requested');
	t.throws(() => planVm(user, {...options, cpus: [5]}, facts, '/run/x', owner), {
		message: /--pv-cpus names CPUs pvrun may not use: 5 \(allowed: 0-1\)/,
		exitCode: 2,
	});
});
