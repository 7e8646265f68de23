// Real QEMU command lines as --pv-dry-run prints them: the QEMU binary on line 1,
// then the user's arguments byte for byte and in order, then pvrun's additions
// (or nothing at all for command lines that run no guest). Sources: the
// qemu-system-x86_64 7.2 manual (man qemu-system), QEMU's JSON forms of
// -object/-device/-blockdev, and libvirt 9.0 (Debian 12) domain and probe lines.
// All are planned in-process (qemu-line.ts); three, and the errors, go through the
// built CLI: needs `make build` (it runs dist/cli/main.js).
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import {pvrunCommand} from '../../src/guest/boot.js';
import t, {type Test} from 'tap';
import {qemuLine} from '../../src/cli/qemu-line.js';
import {packageRoot} from '../../src/util/paths.js';
import {slotOf} from '../../src/vm/devices.js';
import {libvirtProbe} from '../helpers/command-lines.js';

const pvrun = path.join(packageRoot, 'dist', 'cli', 'main.js');
const [node = 'node', ...cli] = pvrunCommand();

interface Case {
	source: string;
	/** pvrun's argv; --pv-dry-run is put first unless the case has it. */
	argv: string[];
	/** The user's QEMU arguments, when argv holds --pv- options too (default: argv). */
	qemu?: string[];
	/** 'unchanged': the output is exactly the QEMU command line given (no guest runs, or --pv-off). */
	expect: 'added' | 'unchanged';
	/** The QEMU binary on line 1 (--pv-qemu). */
	binary?: string;
	/** The user chose an accelerator: pvrun must not add one. */
	userAccel?: boolean;
}

const libvirtDebian12 = [
	'-name',
	'guest=deb12,debug-threads=on',
	'-S',
	'-object',
	'{"qom-type":"secret","id":"masterKey0","format":"raw","file":"/var/lib/libvirt/qemu/domain-1-deb12/master-key.aes"}',
	'-machine',
	'pc-q35-7.2,usb=off,dump-guest-core=off,memory-backend=pc.ram',
	'-accel',
	'tcg',
	'-cpu',
	'qemu64',
	'-m',
	'512',
	'-object',
	'{"qom-type":"memory-backend-ram","id":"pc.ram","size":536870912}',
	'-overcommit',
	'mem-lock=off',
	'-smp',
	'2,sockets=2,cores=1,threads=1',
	'-uuid',
	'6f1f0d5e-8b9a-4c8e-9f57-0e2a6c1d7b3a',
	'-display',
	'none',
	'-no-user-config',
	'-nodefaults',
	'-chardev',
	'socket,id=charmonitor,fd=23,server=on,wait=off',
	'-mon',
	'chardev=charmonitor,id=monitor,mode=control',
	'-rtc',
	'base=utc',
	'-no-shutdown',
	'-boot',
	'strict=on',
	'-kernel',
	'/var/lib/libvirt/boot/vmlinuz-6.1.0-18-amd64',
	'-initrd',
	'/var/lib/libvirt/boot/initrd.img-6.1.0-18-amd64',
	'-append',
	'console=ttyS0 root=/dev/vda1 ro quiet',
	'-device',
	'{"driver":"pcie-root-port","port":16,"chassis":1,"id":"pci.1","bus":"pcie.0","multifunction":true,"addr":"0x2"}',
	'-device',
	'{"driver":"pcie-root-port","port":17,"chassis":2,"id":"pci.2","bus":"pcie.0","addr":"0x2.0x1"}',
	'-device',
	'{"driver":"pcie-root-port","port":18,"chassis":3,"id":"pci.3","bus":"pcie.0","addr":"0x2.0x2"}',
	'-device',
	'{"driver":"qemu-xhci","p2":15,"p3":15,"id":"usb","bus":"pci.1","addr":"0x0"}',
	'-blockdev',
	'{"driver":"file","filename":"/var/lib/libvirt/images/deb12.qcow2","node-name":"libvirt-1-storage","auto-read-only":true,"discard":"unmap"}',
	'-blockdev',
	'{"node-name":"libvirt-1-format","read-only":false,"driver":"qcow2","file":"libvirt-1-storage","backing":null}',
	'-device',
	'{"driver":"virtio-blk-pci","bus":"pci.2","addr":"0x0","drive":"libvirt-1-format","id":"virtio-disk0","bootindex":1}',
	'-netdev',
	'{"type":"tap","fd":"25","vhost":true,"vhostfd":"27","id":"hostnet0"}',
	'-device',
	'{"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:4c:1b:9e","bus":"pci.3","addr":"0x0"}',
	'-chardev',
	'pty,id=charserial0',
	'-device',
	'{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}',
	'-audiodev',
	'{"id":"audio1","driver":"none"}',
	'-sandbox',
	'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
	'-msg',
	'timestamp=on',
];

const libvirtI440fx = [
	'-name',
	'guest=QEMUGuest1,debug-threads=on',
	'-S',
	'-object',
	'{"qom-type":"secret","id":"masterKey0","format":"raw","file":"/var/lib/libvirt/qemu/domain-3-QEMUGuest1/master-key.aes"}',
	'-machine',
	'pc-i440fx-7.2,usb=off,vmport=off,dump-guest-core=off,memory-backend=pc.ram',
	'-accel',
	'kvm',
	'-cpu',
	'host,migratable=on',
	'-m',
	'size=219136k',
	'-object',
	'{"qom-type":"memory-backend-ram","id":"pc.ram","size":224395264}',
	'-overcommit',
	'mem-lock=off',
	'-smp',
	'1,maxcpus=4,sockets=4,cores=1,threads=1',
	'-uuid',
	'c7a5fdbd-edaf-9455-926a-d65c16db1809',
	'-no-user-config',
	'-nodefaults',
	'-chardev',
	'socket,id=charmonitor,fd=29,server=on,wait=off',
	'-mon',
	'chardev=charmonitor,id=monitor,mode=control',
	'-rtc',
	'base=utc,driftfix=slew',
	'-global',
	'kvm-pit.lost_tick_policy=delay',
	'-no-hpet',
	'-no-shutdown',
	'-global',
	'PIIX4_PM.disable_s3=1',
	'-global',
	'PIIX4_PM.disable_s4=1',
	'-boot',
	'strict=on',
	'-device',
	'{"driver":"piix3-usb-uhci","id":"usb","bus":"pci.0","addr":"0x1.0x2"}',
	'-device',
	'{"driver":"virtio-serial-pci","id":"virtio-serial0","bus":"pci.0","addr":"0x5"}',
	'-blockdev',
	'{"driver":"host_cdrom","filename":"/dev/cdrom","node-name":"libvirt-2-storage","auto-read-only":true,"discard":"unmap"}',
	'-blockdev',
	'{"node-name":"libvirt-2-format","read-only":true,"driver":"raw","file":"libvirt-2-storage"}',
	'-device',
	'{"driver":"ide-cd","bus":"ide.1","unit":0,"drive":"libvirt-2-format","id":"ide0-1-0","bootindex":1}',
	'-chardev',
	'socket,id=charchannel0,fd=31,server=on,wait=off',
	'-device',
	'{"driver":"virtserialport","bus":"virtio-serial0.0","nr":1,"chardev":"charchannel0","id":"channel0","name":"org.qemu.guest_agent.0"}',
	'-audiodev',
	'{"id":"audio1","driver":"spice"}',
	'-spice',
	'port=5900,addr=127.0.0.1,disable-ticketing=on,seamless-migration=on',
	'-device',
	'{"driver":"qxl-vga","id":"video0","max_outputs":1,"ram_size":67108864,"vram_size":67108864,"vram64_size_mb":0,"vgamem_mb":16,"bus":"pci.0","addr":"0x2"}',
	'-device',
	'{"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.0","addr":"0x6"}',
	'-object',
	'{"qom-type":"rng-random","id":"objrng0","filename":"/dev/urandom"}',
	'-device',
	'{"driver":"virtio-rng-pci","rng":"objrng0","id":"rng0","bus":"pci.0","addr":"0x7"}',
	'-sandbox',
	'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
	'-msg',
	'timestamp=on',
];

const cases: Case[] = [
	// man qemu-system (QEMU 7.2)
	{source: 'man: dos.img with a GUS', argv: ['dos.img', '-device', 'gus', '-parallel', 'none'], expect: 'added'},
	{source: 'man: -global', argv: ['-global', 'ide-hd.physical_block_size=4096', 'disk-image.img'], expect: 'added'},
	{source: 'man: -boot menu with splash', argv: ['-boot', 'menu=on,splash=/root/boot.bmp,splash-time=5000'], expect: 'added'},
	{source: 'man: -m with hot-plug slots', argv: ['-m', '1G,slots=3,maxmem=4G'], expect: 'added'},
	{source: 'man: -audiodev and sb16', argv: ['-audiodev', 'pa,id=pa', '-device', 'sb16,audiodev=pa'], expect: 'added'},
	{
		source: 'man: -add-fd fd sets (quotes kept literally)',
		argv: [
			'-add-fd',
			'fd=3,set=2,opaque="rdwr:/path/to/file"',
			'-add-fd',
			'fd=4,set=2,opaque="rdonly:/path/to/file"',
			'-drive',
			'file=/dev/fdset/2,index=0,media=disk',
		],
		expect: 'added',
	},
	{
		source: 'man: four -drive (repeated option)',
		argv: [
			'-drive',
			'file=file,index=0,media=disk',
			'-drive',
			'file=file,index=1,media=disk',
			'-drive',
			'file=file,index=2,media=disk',
			'-drive',
			'file=file,index=3,media=disk',
		],
		expect: 'added',
	},
	{source: 'man: -hda -hdb', argv: ['-hda', 'a', '-hdb', 'b'], expect: 'added'},
	{source: 'man: -netdev user + e1000', argv: ['-netdev', 'user,id=n1,ipv6=off', '-device', 'e1000,netdev=n1,mac=52:54:98:76:54:32'], expect: 'added'},
	{source: 'man: hostfwd', argv: ['-nic', 'user,hostfwd=tcp:127.0.0.1:6001-:6000'], expect: 'added'},
	{
		source: 'man: guestfwd to a command (spaces in an argument)',
		argv: ['-nic', 'user,id=n1,guestfwd=tcp:10.0.2.100:1234-cmd:netcat 10.10.1.1 4321'],
		expect: 'added',
	},
	{
		source: 'man: two tap NICs',
		argv: [
			'linux.img',
			'-netdev',
			'tap,id=nd0,ifname=tap0',
			'-device',
			'e1000,netdev=nd0',
			'-netdev',
			'tap,id=nd1,ifname=tap1',
			'-device',
			'rtl8139,netdev=nd1',
		],
		expect: 'added',
	},
	{
		source: 'man: socket multicast',
		argv: ['linux.img', '-device', 'e1000,netdev=n1,mac=52:54:00:12:34:56', '-netdev', 'socket,id=n1,mcast=230.0.0.1:1234'],
		expect: 'added',
	},
	{
		source: 'man: vhost-user',
		argv: [
			'-m',
			'512',
			'-object',
			'memory-backend-file,id=mem,size=512M,mem-path=/hugetlbfs,share=on',
			'-numa',
			'node,memdev=mem',
			'-chardev',
			'socket,id=chr0,path=/path/to/socket',
			'-netdev',
			'type=vhost-user,id=net0,chardev=chr0',
			'-device',
			'virtio-net-pci,netdev=net0',
		],
		expect: 'added',
	},
	{
		source: 'man: authz-simple (",," escapes, spaces, "=")',
		argv: ['-object', 'authz-simple,id=auth0,identity=CN=laptop.example.com,,O=Example Org,,L=London,,ST=London,,C=GB'],
		expect: 'added',
	},
	{
		source: 'man: secrets',
		argv: ['-object', 'secret,id=secmaster0,format=base64,file=key.b64', '-object', 'secret,id=sec0,keyid=secmaster0,format=base64,data=c2VjcmV0+/==,iv=aWl2'],
		expect: 'added',
	},
	{
		source: 'man: iSCSI',
		argv: ['-iscsi', 'initiator-name=iqn.2001-04.com.example:my-initiator', '-drive', 'file=iscsi://192.0.2.1/iqn.2001-04.com.example/1'],
		expect: 'added',
	},
	{source: 'man: NBD with --drive', argv: ['--drive', 'file=nbd:unix:/tmp/nbd-socket'], expect: 'added'},
	{
		source: 'man: ssh with dotted options',
		argv: ['-drive', 'file.driver=ssh,file.user=user,file.host=host,file.port=22,file.path=/path/to/disk.img'],
		expect: 'added',
	},
	{
		source: 'man: json: pseudo-protocol as the disk image',
		argv: [
			'json:{"driver":"qcow2","file":{"driver":"gluster","volume":"testvol","path":"a.img","debug":9,"logfile":"/var/log/qemu-gluster.log","server":[{"type":"tcp","host":"1.2.3.4","port":24007},{"type":"unix","socket":"/var/run/glusterd.socket"}]}}',
		],
		expect: 'added',
	},
	{
		source: 'man: https CD-ROM',
		argv: [
			'--drive',
			'media=cdrom,file=https://archives.fedoraproject.org/pub/archive/fedora/linux/releases/20/Live/x86_64/Fedora-Live-Desktop-x86_64-20-1.iso,readonly',
		],
		expect: 'added',
	},
	// JSON forms
	{
		source: 'JSON -object and -device',
		argv: [
			'-object',
			'{"qom-type":"memory-backend-ram","id":"m0","size":1073741824}',
			'-numa',
			'node,memdev=m0',
			'-device',
			'{"driver":"virtio-net-pci","netdev":"n0"}',
			'-netdev',
			'user,id=n0',
		],
		expect: 'added',
	},
	{
		source: 'JSON -blockdev chain',
		argv: [
			'-blockdev',
			'{"driver":"file","filename":"/var/lib/img/disk.qcow2","node-name":"f0"}',
			'-blockdev',
			'{"driver":"qcow2","file":"f0","node-name":"d0"}',
			'-device',
			'virtio-blk-pci,drive=d0',
		],
		expect: 'added',
	},
	{
		source: 'JSON with unicode and escapes',
		argv: [
			'-device',
			'{"driver":"virtio-blk-pci","drive":"d1","serial":"disque-é-\\u00e9-\\"q\\""}',
			'-blockdev',
			'driver=file,node-name=f1,filename=/srv/vm images/ディスク.img',
		],
		expect: 'added',
	},
	// Direct kernel boot, odd arguments, pvrun's own options
	{
		source: 'kernel boot with a --pv- lookalike inside -append',
		argv: ['-m', '512', '-smp', '2', '-nographic', '-kernel', 'bzImage', '-initrd', 'initrd', '-append', 'console=ttyS0 root=/dev/vda --pv-looking-thing'],
		expect: 'added',
	},
	{
		source: 'option values that are --pv- options',
		argv: ['--pv-dry-run', '-append', '--pv-off', '-name', '--pv-cpus', '-kernel', '--pv-frobnicate'],
		qemu: ['-append', '--pv-off', '-name', '--pv-cpus', '-kernel', '--pv-frobnicate'],
		expect: 'added',
	},
	{
		source: 'empty arguments (one last)',
		argv: ['-serial', 'mon:stdio', '-display', 'none', '-kernel', 'vmlinuz', '-initrd', '', '-append', ''],
		expect: 'added',
	},
	{
		source: 'an inherited chardev fd',
		argv: ['-chardev', 'socket,id=c,fd=3', '-device', 'virtio-serial-pci', '-device', 'virtserialport,chardev=c,name=org.qemu.guest_agent.0'],
		expect: 'added',
	},
	{source: 'unicode and quotes', argv: ['-name', 'gäst-✓-日本', '-append', `quiet msg="héllo wörld" it's \\ \`x\` $HOME`], expect: 'added'},
	{
		source: 'commas, "=" and spaces in values',
		argv: ['-fw_cfg', 'name=opt/com.example/blob,string=a=b,,c d', '-smbios', 'type=1,manufacturer=ACME Inc.,product=Road Runner'],
		expect: 'added',
	},
	{source: 'repeated -name and -smp', argv: ['-name', 'vm', '-name', 'debug-threads=off', '-smp', '1', '-smp', '4'], expect: 'added'},
	{
		source: '--pv- options between QEMU options',
		argv: ['-m', '512', '--pv-dry-run', '-nographic', '--pv-cpus', '0', '--pv-accel=tcg', '-S'],
		qemu: ['-m', '512', '-nographic', '-S'],
		expect: 'added',
	},
	{source: 'an incoming migration', argv: ['-incoming', 'defer', '-S', '-qmp', 'unix:/run/vm1.qmp,server=on,wait=off', '-monitor', 'none'], expect: 'added'},
	{source: "the user's accelerators", argv: ['-accel', 'kvm', '-accel', 'tcg,thread=multi', '-enable-kvm'], expect: 'added', userAccel: true},
	{
		source: '--pv-qemu',
		argv: ['--pv-qemu', '/opt/qemu 7.2/bin/qemu-system-x86_64', '--pv-dry-run', '-m', '256'],
		qemu: ['-m', '256'],
		binary: '/opt/qemu 7.2/bin/qemu-system-x86_64',
		expect: 'added',
	},
	// libvirt
	{source: 'libvirt 9.0 (Debian 12): q35 domain, direct kernel boot', argv: libvirtDebian12, expect: 'added', userAccel: true},
	{source: 'libvirt 9.0: i440fx domain with spice', argv: libvirtI440fx, expect: 'added', userAccel: true},
	{source: 'libvirt capability probe', argv: libvirtProbe, expect: 'unchanged'},
	{source: 'libvirt capability probe, --pv- options given', argv: ['--pv-cpus', '0', ...libvirtProbe, '--pv-dry-run'], qemu: libvirtProbe, expect: 'unchanged'},
	// No guest: informational queries; --pv-off
	{source: '-version', argv: ['-version'], expect: 'unchanged'},
	{source: "--version after --pv-dry-run (QEMU's)", argv: ['--pv-dry-run', '--version'], qemu: ['--version'], expect: 'unchanged'},
	{source: '-device help', argv: ['-device', 'help'], expect: 'unchanged'},
	{source: '-device virtio-net-pci,help', argv: ['-device', 'virtio-net-pci,help'], expect: 'unchanged'},
	{source: '-cpu ?', argv: ['-cpu', '?'], expect: 'unchanged'},
	{source: '-machine help', argv: ['-nodefaults', '-machine', 'help'], expect: 'unchanged'},
	{source: '-M none (type=none)', argv: ['-M', 'type=none', '-S', '-display', 'none'], expect: 'unchanged'},
	{source: '--pv-off with a real guest', argv: ['--pv-off', ...libvirtDebian12], qemu: libvirtDebian12, expect: 'unchanged'},
	{source: '256 vCPUs: as many as the shared memory has slots', argv: ['-smp', '256', '-m', '2048', '-kernel', 'vmlinuz'], expect: 'added'},
	{source: '257 vCPUs: more than pvrun gives hints to', argv: ['-smp', '257', '-m', '2048', '-kernel', 'vmlinuz'], expect: 'unchanged'},
	{source: 'maxcpus=288: more than pvrun gives hints to', argv: ['-smp', '4,maxcpus=288', '-kernel', 'vmlinuz'], expect: 'unchanged'},
];

t.before(() => {
	if (!fs.existsSync(pvrun)) throw new Error(`${pvrun} is missing: run make build first`);
});

/** The checks of one case on what --pv-dry-run printed for it. */
function checkOutput(t: Test, c: Case, out: Buffer): void {
	const qemu = c.qemu ?? c.argv;
	const prefix = Buffer.from([c.binary ?? 'qemu-system-x86_64', ...qemu].map((a) => `${a}\n`).join(''));
	t.ok(out.subarray(0, prefix.length).equals(prefix), "binary, then the user's arguments byte for byte");
	if (c.expect === 'unchanged') {
		t.ok(out.equals(prefix), 'nothing added: QEMU runs exactly as given');
		return;
	}
	const rest = out.subarray(prefix.length).toString('utf8');
	t.ok(rest.endsWith('\n'), 'one argument per line');
	const added = rest.slice(0, -1).split('\n');
	t.ok(added.length >= 10 && added.length % 2 === 0, `pvrun adds option/value pairs after them (${added.length})`);
	t.ok(
		added.every((a, i) => i % 2 === 1 || /^-[a-z]/.test(a)),
		'each addition is an option and its value',
	);
	t.ok(added.includes('-qmp') && added.some((a) => a.includes('"driver":"ivshmem-plain"')), 'the hint channel is added');
	const devices = added.filter((a, i) => added[i - 1] === '-device');
	t.ok(devices.length >= 3 && devices.every((d) => d.startsWith('{')), "pvrun's devices are JSON (created after every user device)");
	const ours = devices.map((d) => JSON.parse(d) as {addr?: string}).flatMap((d) => (d.addr === undefined ? [] : [slotOf(d.addr)]));
	const userSlots = qemu.flatMap((a, i) =>
		qemu[i - 1] === '-device' ? [...a.matchAll(/(?:addr=|"addr":")(0x[0-9a-f]+|[0-9a-f]+)/gi)].map((m) => slotOf(m[1])) : [],
	);
	t.notOk(
		ours.some((s) => userSlots.includes(s)),
		`on a slot no user device names (${ours.join(',') || 'QEMU picks'}; the user's: ${userSlots.join(',') || 'none'})`,
	);
	t.equal(added.includes('-accel'), !c.userAccel, c.userAccel ? "no accelerator over the user's" : 'an accelerator is added');
}

const withDryRun = (argv: string[]) => (argv.includes('--pv-dry-run') ? argv : ['--pv-dry-run', ...argv]);

// Each line is planned in this process, as the CLI plans it (src/cli/qemu-line.ts): a process
// of its own for each would cost the suite ~12 s of CPU. The built CLI prints three of them below.
t.test(`${cases.length} real command lines: the user's arguments first, unchanged and in order`, async (t) => {
	t.ok(cases.length >= 30);
	for (const c of cases)
		await t.test(c.source, async (t) => {
			const line = qemuLine(withDryRun(c.argv));
			t.equal(line.kind, c.expect === 'unchanged' ? 'plain' : 'vm');
			checkOutput(t, c, Buffer.from(`${line.args.join('\n')}\n`));
		});
});

t.test('the built CLI prints those lines: a guest, a line that runs no guest, --pv-off', async (t) => {
	const shown = ['libvirt 9.0 (Debian 12): q35 domain, direct kernel boot', '-device help', '--pv-off with a real guest'];
	for (const source of shown) {
		const c = cases.find((k) => k.source === source);
		t.ok(c, source);
		if (!c) continue;
		await t.test(source, async (t) => {
			const r = await execa(node, [...cli, ...withDryRun(c.argv)], {reject: false, encoding: 'buffer', stripFinalNewline: false});
			t.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
			checkOutput(t, c, Buffer.from(r.stdout));
		});
	}
});

t.test('more vCPUs than pvrun gives hints to: one line, and QEMU runs as given', async (t) => {
	const r = await execa(node, [...cli, '--pv-dry-run', '-smp', '300', '-m', '2048'], {reject: false});
	t.equal(r.exitCode, 0);
	t.equal(r.stdout, 'qemu-system-x86_64\n-smp\n300\n-m\n2048', 'the command line unchanged');
	t.equal(r.stderr, 'pvrun: QEMU runs exactly as given: 300 vCPUs are more than the 256 pvrun can give hints to (the VM runs without them)');
	// Without --pv-dry-run too, then QEMU runs: here it refuses 300 vCPUs on q35 itself, and says so.
	const run = await execa(node, [...cli, '-smp', '300', '-machine', 'q35', '-S', '-display', 'none', '-nodefaults'], {reject: false});
	const [ours = '', ...qemus] = run.stderr.split('\n');
	t.equal(ours, 'pvrun: QEMU runs exactly as given: 300 vCPUs are more than the 256 pvrun can give hints to (the VM runs without them)');
	t.match(qemus.join('\n'), /qemu-system-x86_64: .*300/, "then QEMU's own words");
	t.equal(run.exitCode, 1, "and QEMU's exit code");
});

t.test('an argument with a newline cannot be printed one per line: one clear error, exit 2', async (t) => {
	const r = await execa(node, [...cli, '--pv-dry-run', '-m', '512', '-append', 'console=ttyS0\nquiet'], {reject: false});
	t.equal(r.exitCode, 2);
	t.equal(r.stdout, '', 'nothing printed that could be mistaken for the command line');
	t.equal(r.stderr.split('\n').length, 1, r.stderr);
	t.match(r.stderr, /^pvrun: --pv-dry-run .* argument 4 contains a newline: "console=ttyS0\\nquiet"/);
});

t.test('a command line that runs no guest says why on stderr in a dry run', async (t) => {
	const r = await execa(node, [...cli, '--pv-dry-run', ...libvirtProbe], {reject: false});
	t.equal(r.stderr, "pvrun: QEMU runs exactly as given: -machine none runs no guest (as in libvirt's capability probe)");
});
