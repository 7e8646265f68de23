import {execFileSync} from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import t from 'tap';
import {
	agentFiles,
	asRoot,
	checkGuest,
	formatCheck,
	parseFacts,
	planInstall,
	printable,
	probeScript,
	serviceOf,
	uploadCommand,
	vmForwarding,
	type GuestFacts,
} from '../../src/remote/install.js';

const good: GuestFacts = {
	kernel: '6.1.0-57-cloud-amd64',
	arch: 'x86_64',
	btf: true,
	uid: 0,
	sudo: false,
	port: true,
	shm: '0000:00:1f.0',
	init: 'rcs',
	sums: new Map(),
	version: '',
	running: false,
	live: false,
};

t.test('the probe runs in a POSIX shell and says what this machine is', async (t) => {
	const out = execFileSync('sh', ['-c', probeScript()], {encoding: 'utf8'});
	const facts = parseFacts(out);
	t.equal(facts.kernel, os.release());
	t.equal(facts.arch, 'x86_64');
	t.equal(facts.uid, process.getuid?.());
	t.equal(facts.port, false, 'no pvrun port on the host');
	t.match(facts.init, /^(systemd|sysv|rcs)$/);
});

t.test("the guest's words are parsed strictly and shown bounded, without control characters", async (t) => {
	const facts = parseFacts(
		[
			`kernel=6.1\x1b[2J${'x'.repeat(500)}`,
			'uid=0; rm -rf /',
			'shm=../../etc',
			'init=upstart',
			`sum /usr/sbin/pvagent ${'a'.repeat(64)}`,
			`sum /etc/shadow ${'b'.repeat(64)}`,
			'sum /usr/bin/pvhint short',
			'btf=yes',
			'port=yes',
			'running=yes',
		].join('\n'),
	);
	t.match(facts.kernel, /^6\.1\?\[2Jx+…$/);
	t.ok(facts.kernel.length <= 121);
	t.equal(facts.uid, -1, 'a uid that is not a number is none');
	t.equal(facts.shm, '', 'a PCI address that is not one is none');
	t.equal(facts.init, 'rcs', 'an unknown init kind stays the plain one');
	t.same([...facts.sums.keys()], ['/usr/sbin/pvagent'], 'sums only of our files, only whole ones');
	t.ok(facts.btf && facts.port && facts.running);
	t.equal(printable('a\tb\u00e9'), 'a?b?');
});

t.test('the checks, each with what it found or why it fails', async (t) => {
	t.ok(checkGuest(good).every((c) => c.ok));
	const fails = (facts: Partial<GuestFacts>) =>
		checkGuest({...good, ...facts})
			.filter((c) => !c.ok)
			.map(formatCheck);
	t.same(fails({kernel: '5.4.0-100-generic'}), ["  FAIL  kernel: 5.4.0-100-generic is older than 5.8: pvrun's programs need 5.8 or later"]);
	t.same(fails({kernel: '5.8.0'}), [], '5.8 is enough');
	t.same(fails({arch: 'aarch64'}), ['  FAIL  kernel: 6.1.0-57-cloud-amd64 on aarch64: the agent is built for x86_64']);
	t.match(fails({btf: false})[0], /FAIL {2}BTF: \/sys\/kernel\/btf\/vmlinux is missing/);
	t.same(fails({uid: 1000}), ['  FAIL  privileges: uid 1000 without sudo: installing a service and loading BPF need root']);
	t.same(fails({uid: 1000, sudo: true}), [], 'sudo without a password will do');
	t.match(fails({port: false})[0], /no virtio-serial port org\.pvrun\.agent\.0: is the VM started by pvrun/);
	t.match(fails({shm: ''})[0], /no IVSHMEM device \(PCI 1af4:1110\)/);
	t.match(fails({kernel: ''})[0], /did not say its kernel release/);
});

t.test('the plan: only what differs, and a restart only when something changed or the agent is down', async (t) => {
	const files = agentFiles('/repo');
	const local = new Map(files.map((f) => [f.remote, 'a'.repeat(64)]));
	const svc = serviceOf('rcs');
	const svcSum = crypto.createHash('sha256').update(svc.content).digest('hex');
	const all = new Map([...local, [svc.file, svcSum]]);
	t.same(planInstall({...good, sums: all, running: true}, files, local), {upload: [], service: false, restart: false}, 'all there and running: nothing');
	t.same(planInstall({...good, sums: all, running: false}, files, local), {upload: [], service: false, restart: true}, 'down: a restart');
	const changed = new Map(all);
	changed.set('/usr/bin/pvcs', 'b'.repeat(64));
	const plan = planInstall({...good, sums: changed, running: true}, files, local);
	t.same(
		plan.upload.map((f) => f.remote),
		['/usr/bin/pvcs'],
	);
	t.ok(plan.restart);
	t.ok(planInstall({...good, init: 'systemd', sums: all, running: true}, files, local).service, 'another init: its own service file');
	t.same(
		agentFiles('/repo').map((f) => [f.local, f.remote]),
		[
			['/repo/guest-agent/pvagent', '/usr/sbin/pvagent'],
			['/repo/guest-agent/pvhint', '/usr/bin/pvhint'],
			['/repo/guest-agent/pvcs', '/usr/bin/pvcs'],
			['/repo/guest-agent/pvcs.h', '/usr/include/pvrun/pvcs.h'],
			['/repo/bpf/pvrun_shm.h', '/usr/include/pvrun/pvrun_shm.h'],
		],
	);
});

t.test('services: a systemd unit, a Debian init script, a busybox S90 script', async (t) => {
	t.match(serviceOf('systemd'), {file: '/etc/systemd/system/pvagent.service', restart: 'systemctl restart pvagent.service'});
	t.match(serviceOf('systemd').content, /^ExecStart=\/usr\/sbin\/pvagent$/m);
	t.match(serviceOf('sysv'), {file: '/etc/init.d/pvagent', enable: /update-rc\.d pvagent defaults/});
	t.match(serviceOf('rcs'), {file: '/etc/init.d/S90pvagent', restart: '/etc/init.d/S90pvagent restart'});
	const syntax = execFileSync('sh', ['-n', '-c', serviceOf('rcs').content], {encoding: 'utf8'});
	t.equal(syntax, '', 'the init script parses');
});

t.test('commands: an atomic upload, root directly or through sudo, quoting kept', async (t) => {
	t.equal(
		uploadCommand('/usr/sbin/pvagent', 0o755),
		'umask 022 && mkdir -p /usr/sbin && cat >/usr/sbin/.pvagent.pvrun-new && chmod 755 /usr/sbin/.pvagent.pvrun-new && mv -f /usr/sbin/.pvagent.pvrun-new /usr/sbin/pvagent',
	);
	t.equal(asRoot({uid: 0}, "echo 'x'"), `sh -c 'echo '\\''x'\\'''`);
	t.equal(asRoot({uid: 1000}, 'true'), "sudo -n sh -c 'true'");
	t.equal(execFileSync('sh', ['-c', asRoot({uid: 0}, "printf '%s' \"it's\"")], {encoding: 'utf8'}), "it's");
});

t.test("the VM a target reaches: the one whose QEMU forwards the target's port", async (t) => {
	const cmdlines = new Map<number, string[]>([
		[10, ['qemu', '-nic', 'user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22']],
		[11, ['qemu', '-netdev', 'user,id=n,hostfwd=tcp::2223-:22,hostfwd=tcp::8080-:80']],
		[12, ['qemu', '-nic', 'user,hostfwd=tcp:10.1.2.3:2224-:22']],
	]);
	const vms = [{qemuPid: 10}, {qemuPid: 11}, {qemuPid: 12}, {qemuPid: 13}];
	const find = (host: string, port: number) => vmForwarding({user: 'root', host, port}, vms, (pid) => cmdlines.get(pid)).map((v) => v.qemuPid);
	t.same(find('127.0.0.1', 2222), [10]);
	t.same(find('localhost', 2223), [11], 'an empty address listens on every one');
	t.same(find('10.1.2.3', 2224), [12]);
	t.same(find('127.0.0.1', 2224), [], 'another address');
	t.same(find('127.0.0.1', 8080), [11], 'any forwarded port');
	t.same(find('127.0.0.1', 22), []);
});
