// planVm for a QEMU that daemonizes: where its pid will be read from, and
// that the user's arguments stay first and unchanged.
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {fastPathAvailable} from '../../src/host/fastpath.js';
import {kickPortName} from '../../src/vm/devices.js';
import {planVm} from '../../src/vm/launch.js';

const options = {accel: 'tcg', off: false, fastPath: true, dryRun: false, qemu: 'qemu-system-x86_64', agentWaitS: 60} as const;
const owner = {pid: 4242, cwd: '/srv/vm'};

t.test('without -daemonize: no pidfile business', async (t) => {
	const user = ['-m', '512', '-pidfile', 'q.pid'];
	const plan = planVm(user, options, os.tmpdir(), owner);
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
	const plan = planVm(user, options, os.tmpdir(), owner);
	t.equal(plan.daemonize, true);
	t.equal(plan.pidFile, path.join(plan.runDir, 'qemu.pid'));
	t.same(plan.args.slice(0, user.length), user);
	t.same(plan.args.slice(-2), ['-pidfile', plan.pidFile]);
});

t.test("-daemonize with the user's -pidfile: QEMU's last one, relative to the user's directory", async (t) => {
	for (const spelling of ['-daemonize', '--daemonize']) {
		const user = ['-pidfile', 'first.pid', spelling, '--pidfile', 'run/qemu.pid'];
		const plan = planVm(user, options, os.tmpdir(), owner);
		t.equal(plan.daemonize, true, spelling);
		t.equal(plan.pidFile, '/srv/vm/run/qemu.pid');
		t.equal(plan.args.filter((a) => a.endsWith('pidfile')).length, 2, 'nothing added');
	}
});

t.test("'-daemonize' as an option's value is not the option", async (t) => {
	const plan = planVm(['-append', '-daemonize', '-name', 'x'], options, os.tmpdir(), owner);
	t.equal(plan.daemonize, false);
});

t.test('the kick port is added when the fast path can run, and not with --pv-fast-path off', async (t) => {
	t.equal(fastPathAvailable(), true, 'make builds the library');
	const on = planVm(['-m', '512'], options, os.tmpdir(), owner);
	t.equal(on.kickSocket, path.join(on.runDir, 'kick.sock'));
	t.ok(on.args.includes(`socket,id=pvrun-kick,path=${on.kickSocket},server=on,wait=off`), 'its chardev');
	t.ok(on.args.includes(JSON.stringify({driver: 'virtserialport', id: 'pvrun-kport', bus: 'pvrun-vser.0', chardev: 'pvrun-kick', name: kickPortName})), 'its port, on the agent channel');
	t.equal(on.fastPathOff, undefined);
	const off = planVm(['-m', '512'], {...options, fastPath: false}, os.tmpdir(), owner);
	t.equal(off.kickSocket, undefined);
	t.notOk(off.args.some((a) => a.includes('-kick')), 'no kick port');
	t.equal(off.fastPathOff, '--pv-fast-path off', 'and the reason, for the log');
});
