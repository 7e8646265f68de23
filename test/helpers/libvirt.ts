// libvirt as a real client of pvrun, for end-to-end tests: scripts/libvirt.sh
// brings qemu:///system up (and down in teardown), virsh runs the domains, and
// the host-side views come from where libvirt keeps them (its pid file, QMP
// through `virsh qemu-monitor-command`, its per-domain log). See docs/libvirt.md.
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import type {Test} from 'tap';
import {packageRoot} from '../../src/util/paths.js';
import {runtimeRoot} from '../../src/vm/runtime-dir.js';

export const libvirtUri = 'qemu:///system';
/** The harness that installs, starts and stops libvirt. */
export const harness = path.join(packageRoot, 'scripts', 'libvirt.sh');
/** pvrun as one executable file: what a domain's <emulator> names. */
export const pvrunLauncher = path.join(packageRoot, 'bin', 'pvrun');
/** libvirt runs QEMU (here: pvrun) as this user (DAC security driver, Debian's build). */
export const qemuUser = 'libvirt-qemu';
/** Where libvirt keeps a running domain's pid file (of the process it started: pvrun). */
export const pidFileOf = (name: string) => `/run/libvirt/qemu/${name}.pid`;
/** libvirt's per-domain log: the command line it ran, then the emulator's stderr. */
export const domainLogOf = (name: string) => `/var/log/libvirt/qemu/${name}.log`;
/** Images staged here are readable by libvirt-qemu (/root is not). */
export const imagesRoot = '/var/lib/libvirt/images';

/** Run `virsh -c qemu:///system ARGS`; resolves to stdout, rejects with virsh's error line. */
export async function virsh(...args: string[]): Promise<string> {
	const r = await execa('virsh', ['-c', libvirtUri, ...args], {reject: false, timeout: 120_000, stdin: 'ignore'});
	if (r.exitCode !== 0) throw new Error(`virsh ${args.join(' ')} failed (${r.exitCode ?? r.signal}): ${(r.stderr || r.stdout).trim()}`);
	return r.stdout;
}

/** One libvirt session of a test: cleanups run last-in first-out in teardown, then the harness's `down`. */
export interface LibvirtSession {
	/** ms `scripts/libvirt.sh up` took. */
	upMs: number;
	/** What `up` printed. */
	upOutput: string;
	/** Run `fn` in teardown (before libvirt goes down), even when the test failed. */
	cleanup(fn: () => unknown): void;
	/** Print `file`'s last lines as test comments if the test has failed by teardown. */
	onFailureShow(file: string, lines?: number): void;
}

/** `scripts/libvirt.sh up`, with `down` (and every registered cleanup) in `t`'s teardown. */
export async function libvirtUp(t: Test): Promise<LibvirtSession> {
	const cleanups: Array<() => unknown> = [];
	const shown: Array<[string, number]> = [];
	t.teardown(async () => {
		if (!t.passing()) {
			for (const [file, n] of shown) {
				let text = '(missing)';
				try {
					text = fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
				} catch {
					// keep '(missing)'
				}
				t.comment(`--- ${file} (last ${n} lines):\n${text}`);
			}
		}
		for (const fn of cleanups.reverse()) {
			try {
				await fn();
			} catch (error) {
				t.comment(`cleanup failed: ${(error as Error).message}`);
			}
		}
		const down = await execa(harness, ['down'], {reject: false, all: true, timeout: 60_000});
		if (down.exitCode !== 0) t.comment(`scripts/libvirt.sh down failed:\n${down.all ?? ''}`);
	});
	const started = performance.now();
	const up = await execa(harness, ['up'], {reject: false, all: true, timeout: 600_000, stdin: 'ignore'});
	const upMs = performance.now() - started;
	if (up.exitCode !== 0) throw new Error(`scripts/libvirt.sh up failed:\n${up.all ?? ''}`);
	shown.push(['/var/log/libvirt/libvirtd.log', 20]);
	return {
		upMs,
		upOutput: up.all ?? '',
		cleanup: (fn) => cleanups.push(fn),
		onFailureShow: (file, lines = 30) => shown.push([file, lines]),
	};
}

/** A domain's files, staged where libvirt-qemu can read (and, for pvrun's log, write) them. */
export interface StagedDomain {
	name: string;
	dir: string;
	kernel: string;
	initrd: string;
	/** The guest's serial console, written by QEMU through a descriptor libvirt opened. */
	console: string;
	/** pvrun's --pv-log, written by pvrun as libvirt-qemu. */
	eventLog: string;
	/** A small empty raw disk for the domain's virtio disk. */
	disk: string;
}

/**
 * Copy the guest's kernel and initrd into a fresh directory under
 * /var/lib/libvirt/images owned by libvirt-qemu; removed in teardown. (libvirt's
 * DAC driver chowns the kernel and initrd to libvirt-qemu while the domain runs
 * and back after, but it cannot open a way through /root, which is 0700.)
 */
export function stageDomain(session: LibvirtSession, name: string, image: {kernel: string; initrd: string}): StagedDomain {
	const dir = path.join(imagesRoot, name);
	fs.rmSync(dir, {recursive: true, force: true});
	fs.mkdirSync(dir, {recursive: true, mode: 0o755});
	session.cleanup(() => fs.rmSync(dir, {recursive: true, force: true}));
	const kernel = path.join(dir, 'vmlinuz');
	const initrd = path.join(dir, 'initrd.img');
	fs.copyFileSync(image.kernel, kernel);
	fs.copyFileSync(image.initrd, initrd);
	fs.chmodSync(kernel, 0o644);
	fs.chmodSync(initrd, 0o644);
	const disk = path.join(dir, 'disk.img');
	fs.writeFileSync(disk, '');
	fs.truncateSync(disk, 16 * 1024 * 1024);
	const {uid, gid} = userIds(qemuUser);
	fs.chownSync(dir, uid, gid);
	fs.chownSync(disk, uid, gid);
	return {name, dir, kernel, initrd, console: path.join(dir, 'console.log'), eventLog: path.join(dir, 'events.jsonl'), disk};
}

/** uid and gid of `user`, from /etc/passwd. */
export function userIds(user: string): {uid: number; gid: number} {
	const line = fs
		.readFileSync('/etc/passwd', 'utf8')
		.split('\n')
		.find((l) => l.startsWith(`${user}:`));
	const [, , uid, gid] = line?.split(':') ?? [];
	if (uid === undefined || gid === undefined) throw new Error(`no user ${user} in /etc/passwd: did scripts/libvirt.sh up run?`);
	return {uid: Number(uid), gid: Number(gid)};
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

export interface DomainOptions {
	/** The guest command (pvrun.run=, commas for spaces). */
	run: string;
	cpus?: number;
	memoryMiB?: number;
	/** pvrun options, passed through <qemu:commandline> (libvirt appends them after its own arguments). */
	pvArgs?: string[];
	/** What a guest reboot does (default destroy: the tests' guests power off when done). */
	onReboot?: 'destroy' | 'restart';
}

/**
 * The domain XML: TCG (`type='qemu'`), `<emulator>` = pvrun, the default guest's
 * kernel and initrd with the same kernel command line `bootArgs` uses, ACPI (or
 * the guest sees one CPU), the console in a file, a virtio disk, and what libvirt
 * adds by default (its USB controller, the memory balloon at slot 2, PS/2 input).
 */
export function domainXml(d: StagedDomain, options: DomainOptions): string {
	const cmdline = ['console=ttyS0', 'quiet', 'panic=-1', 'no_timer_check', `pvrun.run=${options.run}`].join(' ');
	const pvArgs = options.pvArgs ?? [];
	return `<domain type='qemu'${pvArgs.length ? " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" : ''}>
  <name>${xmlEscape(d.name)}</name>
  <memory unit='MiB'>${options.memoryMiB ?? 512}</memory>
  <vcpu placement='static'>${options.cpus ?? 2}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xmlEscape(d.kernel)}</kernel>
    <initrd>${xmlEscape(d.initrd)}</initrd>
    <cmdline>${xmlEscape(cmdline)}</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>${options.onReboot ?? 'destroy'}</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${xmlEscape(pvrunLauncher)}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${xmlEscape(d.disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='${xmlEscape(d.console)}'/>
      <target port='0'/>
    </serial>
  </devices>${pvArgs.length ? `\n  <qemu:commandline>\n${pvArgs.map((a) => `    <qemu:arg value='${xmlEscape(a)}'/>`).join('\n')}\n  </qemu:commandline>` : ''}
</domain>
`;
}

/** The pid libvirt recorded for a running domain: the process it started as the emulator. */
export function domainPid(name: string): number {
	return Number(fs.readFileSync(pidFileOf(name), 'utf8').trim());
}

/** vCPU index → host thread id, from QMP `query-cpus-fast` through libvirt's own monitor. */
export async function vcpuThreads(name: string): Promise<number[]> {
	const out = await virsh('qemu-monitor-command', name, '{"execute":"query-cpus-fast"}');
	const reply = JSON.parse(out) as {return?: Array<{'cpu-index': number; 'thread-id': number}>};
	const cpus = [...(reply.return ?? [])].sort((a, b) => a['cpu-index'] - b['cpu-index']);
	return cpus.map((c) => c['thread-id']);
}

/** A /proc/<pid>/status field ('' if the process is gone). */
export function procStatus(pid: number, field: string): string {
	try {
		const m = new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
		return m?.[1] ?? '';
	} catch {
		return '';
	}
}

/** Whether process `pid` exists (and is not a zombie). */
export function alive(pid: number): boolean {
	const state = procStatus(pid, 'State');
	return state !== '' && !state.startsWith('Z');
}

/** `virsh domstate --reason NAME`, e.g. 'running (booted)', 'shut off (destroyed)'. */
export async function domainState(name: string): Promise<string> {
	return (await virsh('domstate', '--reason', name)).trim();
}

/** Resolves with the first console line matching `pattern`; rejects after `ms` with the last lines. */
export async function waitForConsole(file: string, pattern: RegExp | string, ms: number): Promise<string> {
	const matches = (line: string) => (typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line));
	const started = performance.now();
	let lines: string[] = [];
	while (performance.now() - started < ms) {
		try {
			lines = fs
				.readFileSync(file, 'utf8')
				.split('\n')
				.map((l) => l.replace(/\r$/, ''));
		} catch {
			lines = [];
		}
		const hit = lines.find(matches);
		if (hit !== undefined) return hit;
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`the console (${file}) did not show ${String(pattern)} within ${ms} ms; last lines:\n${lines.slice(-15).join('\n')}`);
}

/** The emulator command line libvirt logged for the domain's last start, on one line (shell quoting kept, environment left out). */
export function loggedCommandLine(name: string): string {
	const log = fs.readFileSync(domainLogOf(name), 'utf8');
	const lines = log.slice(log.lastIndexOf('starting up libvirt')).split('\n').slice(1);
	const out: string[] = [];
	for (const line of lines) {
		if (!/^[A-Z_]+=/.test(line)) out.push(line.replace(/ \\$/, ''));
		if (!line.endsWith('\\')) break;
	}
	return out.join(' ');
}

/**
 * The runtime root of a pvrun libvirt runs as `user`: libvirt gives the emulator neither TMPDIR
 * nor XDG_RUNTIME_DIR, so /tmp/pvrun-<uid> (libvirt.test.ts checks that against the environment
 * of the pvrun it started).
 */
export const qemuUserRoot = (user: string): string => runtimeRoot({}, userIds(user).uid, '/tmp').dir;

/** pvrun's files (shared memory, run directory) for the pvrun process `pid`, which ran as `user`. */
export function pvrunLeftovers(pid: number, user: string): string[] {
	const mine = (dir: string) =>
		fs.existsSync(dir)
			? fs
					.readdirSync(dir)
					.filter((n) => n.startsWith(`pvrun-${pid}-`))
					.map((n) => path.join(dir, n))
			: [];
	return [...mine('/dev/shm'), ...mine(qemuUserRoot(user))];
}

/** One vCPU as `virsh vcpuinfo` shows it. */
export interface VcpuInfo {
	vcpu: number;
	/** The host CPU it last ran on. */
	cpu: number;
	/** Seconds of CPU time. */
	cpuTime: number;
	/** 'yy', '-y'...: one character per host CPU. */
	affinity: string;
}

/** `virsh vcpuinfo NAME`, parsed: what libvirt reads under the pid it knows. */
export async function vcpuInfo(name: string): Promise<VcpuInfo[]> {
	const out = await virsh('vcpuinfo', name);
	return out
		.split(/\n\s*\n/)
		.map((block) => {
			const field = (key: string) => new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim() ?? '';
			return {vcpu: Number(field('VCPU')), cpu: Number(field('CPU')), cpuTime: parseFloat(field('CPU time')) || 0, affinity: field('CPU Affinity')};
		})
		.filter((v) => v.affinity !== '');
}

/** `virsh domstats --vcpu NAME` as key → value ('vcpu.0.time' → '1230000000'). */
export async function vcpuStats(name: string): Promise<Map<string, string>> {
	const out = await virsh('domstats', '--vcpu', name);
	return new Map(
		out
			.split('\n')
			.map((l) => l.trim().split('='))
			.filter((kv): kv is [string, string] => kv.length === 2),
	);
}
