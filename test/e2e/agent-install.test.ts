// End to end, bringing your own guest: the ssh image flavour (no agent; dropbear, a test
// key) boots under pvrun with user networking; pvrun agent install refuses an unknown and a
// changed host key, bad credentials and a guest without BTF, each in one line with exit 1
// and nothing installed; then installs over SSH, and a guest taskset pin re-pins the vCPU
// thread on the host. A second install changes nothing; a changed file is put back and the
// agent restarted; uninstall removes it all.
import {execFile} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {promisify} from 'node:util';
import t from 'tap';
import {pvrunCommand} from '../../src/guest/boot.js';
import {SshSession} from '../../src/remote/ssh.js';
import {packageRoot} from '../../src/util/paths.js';
import {bootThroughPvrun, hasExclusiveCpu, vmFromLog, within} from '../helpers/pvrun-vm.js';

const run = promisify(execFile);
const testKey = path.join(packageRoot, 'images', 'ssh', 'test-key');

/** A TCP port free on the loopback now (the kernel's choice). */
async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = net.createServer().listen(0, '127.0.0.1', () => {
			const address = server.address();
			server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
		});
	});
}

/** `pvrun agent ...`: its exit code and output. */
async function agent(...args: string[]): Promise<{code: number; out: string; err: string}> {
	const [cmd = '', ...rest] = pvrunCommand('agent', ...args);
	try {
		const {stdout, stderr} = await run(cmd, rest, {timeout: 120_000});
		return {code: 0, out: stdout, err: stderr};
	} catch (error) {
		const e = error as {code?: number; stdout?: string; stderr?: string};
		return {code: typeof e.code === 'number' ? e.code : -1, out: e.stdout ?? '', err: e.stderr ?? ''};
	}
}

t.test('pvrun agent install over SSH into a guest without the agent', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-agent-install-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const knownHosts = path.join(dir, 'known_hosts');
	const port = await freePort();
	const target = `root@127.0.0.1:${port}`;
	const {guest, logFile} = await bootThroughPvrun(t, {
		flavour: 'ssh',
		run: 'sleep,3600',
		qemuArgs: ['-nic', `user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:${port}-:22`],
	});
	await guest.waitFor('pvrun-guest: ready', 90_000);
	const common = ['-i', testKey, '--known-hosts', knownHosts];

	const unknown = await agent('install', target, ...common);
	t.equal(unknown.code, 1, 'an unknown host key: exit 1');
	t.match(unknown.err, /host key ssh-ed25519 SHA256:\S+ is not in .*known_hosts: check it, then accept it with --accept-new-host-key\n$/);
	t.notOk(fs.existsSync(knownHosts), 'and known_hosts is left alone');

	// Our own session to look into the guest, accepting its key into the test's known_hosts.
	const ssh = await SshSession.connect({user: 'root', host: '127.0.0.1', port}, {identities: [testKey], knownHosts, acceptNewHostKey: true, agent: ''});
	t.teardown(() => ssh.close());
	t.match(fs.readFileSync(knownHosts, 'utf8'), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${port} ssh-ed25519 \\S+\\n$`), 'a new key goes into known_hosts');

	await t.test('a guest without BTF is refused before anything is copied', async (t) => {
		t.equal((await ssh.run('mount -t tmpfs none /sys/kernel/btf')).code, 0);
		const r = await agent('install', target, ...common);
		t.equal((await ssh.run('umount /sys/kernel/btf')).code, 0);
		t.equal(r.code, 1);
		t.match(r.out, /^ {2}FAIL {2}BTF: \/sys\/kernel\/btf\/vmlinux is missing: the guest kernel has no BTF/m, 'the failed check on its line');
		t.match(r.out, /^ {2}ok {4}channel: virtio-serial port org\.pvrun\.agent\.0$/m, 'the others pass');
		t.match(r.err, /^pvrun: the guest fails a check \(BTF\): nothing installed\n$/);
		t.equal((await ssh.run('[ -e /usr/sbin/pvagent ] || [ -e /etc/init.d/S90pvagent ]')).code, 1, 'nothing in the guest');
	});

	await t.test('a changed host key is refused', async (t) => {
		const forged = path.join(dir, 'forged');
		fs.writeFileSync(forged, `[127.0.0.1]:${port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHXOuTb79s4sYsd3d8mJ7Qn6mAVdfVSBBTCAw4HbMuh1\n`);
		const r = await agent('install', target, '-i', testKey, '--known-hosts', forged, '--accept-new-host-key');
		t.equal(r.code, 1);
		t.match(r.err, /^pvrun: root@127\.0\.0\.1:\d+: host key ssh-ed25519 SHA256:\S+ does not match .*forged:1: the host key has CHANGED/);
		t.equal(r.err.split('\n').filter(Boolean).length, 1, 'in one line');
	});

	await t.test('bad credentials', async (t) => {
		const other = path.join(dir, 'other-key');
		await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
		const r = await agent('install', target, '-i', other, '--known-hosts', knownHosts);
		t.equal(r.code, 1);
		t.equal(r.err, `pvrun: ${target}: authentication failed (tried key ${other})\n`);
	});

	await t.test('install, and a guest pin re-pins the vCPU thread on the host', async (t) => {
		const r = await agent('install', target, ...common);
		t.equal(r.code, 0, r.err);
		for (const check of ['kernel', 'BTF', 'privileges', 'channel', 'shared memory']) t.match(r.out, new RegExp(`^ {2}ok {4}${check}: `, 'm'), `check ${check}`);
		t.match(r.out, /^ {2}put {3}\/usr\/sbin\/pvagent$/m);
		t.match(r.out, /^ {2}put {3}\/etc\/init\.d\/S90pvagent \(init script, enabled\)$/m, 'a busybox guest gets an S90 boot script');
		t.match(r.out, /pvagent \d+\.\d+\.\d+ .*installed and running; pvrun answered \(VM pvrun-\d+-[0-9a-f]+: hints active/, 'pvrun answered the agent');
		const {qemuPid, threads} = await vmFromLog(logFile);
		t.notOk(hasExclusiveCpu(qemuPid, threads, 1), 'no vCPU has a CPU of its own before the pin');
		const start = performance.now();
		await ssh.run('taskset -c 1 sh -c "while :; do :; done" >/dev/null 2>&1 & echo $! >/tmp/spin');
		const ms = await within(30_000, () => hasExclusiveCpu(qemuPid, threads, 1), 100);
		t.ok(ms >= 0, `the guest's pin on CPU 1 gave vCPU 1 a host CPU of its own (within ${Math.round(performance.now() - start)} ms of the SSH command)`);
		await ssh.run('kill $(cat /tmp/spin)');
	});

	await t.test('a second install changes nothing; a changed file is put back and the agent restarted', async (t) => {
		const again = await agent('install', target, ...common);
		t.equal(again.code, 0);
		t.match(again.out, /installed and running, files unchanged; nothing to do\n$/);
		t.notMatch(again.out, /put|start/);
		const pid = (await ssh.run('cat /run/pvagent.pid')).stdout.trim();
		await ssh.run('echo changed >>/usr/bin/pvcs');
		const upgrade = await agent('install', target, ...common);
		t.equal(upgrade.code, 0, upgrade.err);
		t.match(upgrade.out, /^ {2}put {3}\/usr\/bin\/pvcs$/m, 'only the changed file');
		t.notMatch(upgrade.out, /put {3}\/usr\/sbin\/pvagent/);
		t.match(upgrade.out, /start pvagent[\s\S]*pvrun answered \(VM \S+: hints active/);
		t.not((await ssh.run('cat /run/pvagent.pid')).stdout.trim(), pid, 'a new agent process');
	});

	await t.test('status and uninstall', async (t) => {
		const st = await agent('status', target, ...common);
		t.equal(st.code, 0);
		t.match(st.out, /pvagent \d+\.\d+\.\d+ .*, running, pvrun answered it \(rcs service; VM \S+: hints active/);
		const un = await agent('uninstall', target, ...common);
		t.equal(un.code, 0, un.err);
		t.match(un.out, /stop pvagent; removed \/etc\/init\.d\/S90pvagent[\s\S]*rm {4}\/usr\/sbin\/pvagent[\s\S]*agent removed\n$/);
		t.equal((await ssh.run('pidof pvagent || [ -e /usr/sbin/pvagent ] || [ -e /usr/include/pvrun ]')).code, 1, 'no agent process or file left');
		const none = await agent('status', target, ...common);
		t.equal(none.code, 3);
		t.match(none.out, /no agent installed/);
	});
});
