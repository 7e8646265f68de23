// `pvrun agent install|uninstall|status` over SSH: check that a running guest can take the
// agent (kernel, BTF, privileges, pvrun's virtio-serial port and shared memory), put the
// static agent, the hint tools and the guest headers in place, install a service that starts
// the agent at boot (systemd's unit, a Debian init script, or a busybox-style S90 script),
// start it, and wait until pvrun has answered it. Nothing is changed in a guest that fails a
// check, and nothing is rewritten that is already the same. What the guest prints is
// untrusted: parsed strictly, bounded, and shown without control characters.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {sha256File} from '../image/apt.js';
import {PvrunError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {formatTarget, type SshSession, type SshTarget} from './ssh.js';

/** The port the agent talks to pvrun through (guest-agent/proto.h's PVAG_PORT_NAME). */
export const agentPortName = 'org.pvrun.agent.0';
/** The agent writes this when pvrun has loaded its programs (src/agent/protocol.ts's liveFile). */
const liveFile = '/run/pvagent.live';
/** The oldest guest kernel pvrun's programs load on (BPF ring buffer, BTF-typed tracepoints). */
export const minimumKernel: readonly [number, number] = [5, 8];

export interface AgentFile {
	/** Path in this checkout. */
	local: string;
	/** Absolute path in the guest. */
	remote: string;
	mode: number;
}

/** What goes into the guest: the agent, the hint tools, and the headers guest programs build with. */
export function agentFiles(root: string = packageRoot): AgentFile[] {
	return [
		{local: path.join(root, 'guest-agent', 'pvagent'), remote: '/usr/sbin/pvagent', mode: 0o755},
		{local: path.join(root, 'guest-agent', 'pvhint'), remote: '/usr/bin/pvhint', mode: 0o755},
		{local: path.join(root, 'guest-agent', 'pvcs'), remote: '/usr/bin/pvcs', mode: 0o755},
		{local: path.join(root, 'guest-agent', 'pvcs.h'), remote: '/usr/include/pvrun/pvcs.h', mode: 0o644},
		{local: path.join(root, 'bpf', 'pvrun_shm.h'), remote: '/usr/include/pvrun/pvrun_shm.h', mode: 0o644},
	];
}

export type InitKind = 'systemd' | 'sysv' | 'rcs';

/** Where each kind of init keeps the agent's service, and how it is enabled, (re)started and removed. */
export function serviceOf(kind: InitKind): {file: string; content: string; enable: string; restart: string; disable: string; status: string} {
	if (kind === 'systemd')
		return {
			file: '/etc/systemd/system/pvagent.service',
			content: systemdUnit,
			enable: 'systemctl daemon-reload && systemctl enable --quiet pvagent.service',
			restart: 'systemctl restart pvagent.service',
			disable: 'systemctl disable --now --quiet pvagent.service; rm -f /etc/systemd/system/pvagent.service; systemctl daemon-reload',
			status: 'systemctl is-active --quiet pvagent.service',
		};
	const file = kind === 'sysv' ? '/etc/init.d/pvagent' : '/etc/init.d/S90pvagent';
	return {
		file,
		content: initScript,
		enable: kind === 'sysv' ? 'update-rc.d pvagent defaults >/dev/null' : 'true',
		restart: `${file} restart`,
		disable: `${file} stop; ${kind === 'sysv' ? 'update-rc.d -f pvagent remove >/dev/null; ' : ''}rm -f ${file}`,
		status: `${file} status >/dev/null`,
	};
}

const systemdUnit = `[Unit]
Description=pvrun guest agent: relays the guest's hints to the host
# Installed by pvrun agent install; pvrun agent uninstall removes it.

[Service]
ExecStartPre=-/bin/rm -f ${liveFile}
ExecStart=/usr/sbin/pvagent
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`;

const initScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          pvagent
# Required-Start:    $local_fs
# Required-Stop:     $local_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: pvrun guest agent
### END INIT INFO
# pvrun's guest agent: relays the hints of the guest's BPF programs to the host.
# Installed by pvrun agent install; pvrun agent uninstall removes it.
pidfile=/run/pvagent.pid
running() { [ -s $pidfile ] && kill -0 "$(cat $pidfile)" 2>/dev/null; }
case "$1" in
start)
	running && exit 0
	rm -f ${liveFile}
	mkdir -p /var/log
	setsid /usr/sbin/pvagent </dev/null >>/var/log/pvagent.log 2>&1 &
	echo $! >$pidfile
	;;
stop)
	for pid in $(cat $pidfile 2>/dev/null) $(pidof pvagent); do kill "$pid" 2>/dev/null; done
	i=0
	while pidof pvagent >/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	rm -f $pidfile ${liveFile}
	;;
restart)
	"$0" stop
	"$0" start
	;;
status)
	if running; then echo "pvagent running, pid $(cat $pidfile)"; else echo "pvagent not running"; exit 3; fi
	;;
*)
	echo "usage: $0 start|stop|restart|status" >&2
	exit 2
	;;
esac
`;

/** What the guest says of itself, parsed from the probe's key=value lines. */
export interface GuestFacts {
	kernel: string;
	arch: string;
	btf: boolean;
	uid: number;
	sudo: boolean;
	port: boolean;
	/** The IVSHMEM device's PCI address, '' if none. */
	shm: string;
	init: InitKind;
	/** SHA256 of each installed file (remote path → hex), where present. */
	sums: Map<string, string>;
	/** `pvagent --version` of the installed agent, '' if none. */
	version: string;
	/** Whether the agent's service says it runs. */
	running: boolean;
	live: boolean;
}

const initKinds = ['systemd', 'sysv', 'rcs'] as const;

/** The guest files an install may have written: their sums are what the probe reports. */
function installedPaths(): string[] {
	return [...agentFiles().map((f) => f.remote), ...initKinds.map((k) => serviceOf(k).file)];
}

/**
 * The shell script that prints the facts: one key=value per line, `sum <path> <hex>` per file.
 * Whether the agent runs is asked of the service of the init it finds, in the same round trip.
 */
export function probeScript(): string {
	return [
		'echo "kernel=$(uname -r)"',
		'echo "arch=$(uname -m)"',
		'[ -r /sys/kernel/btf/vmlinux ] && echo btf=yes || echo btf=no',
		'echo "uid=$(id -u)"',
		'if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then echo sudo=yes; else echo sudo=no; fi',
		`port=no; for f in /sys/class/virtio-ports/*/name; do [ "$(cat "$f" 2>/dev/null)" = ${agentPortName} ] && port=yes; done; echo "port=$port"`,
		'shm=; for d in /sys/bus/pci/devices/*; do [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1af4 ] && [ "$(cat "$d/device" 2>/dev/null)" = 0x1110 ] && shm=${d##*/}; done; echo "shm=$shm"',
		'if [ -d /run/systemd/system ]; then init=systemd; elif command -v update-rc.d >/dev/null; then init=sysv; else init=rcs; fi; echo "init=$init"',
		`for f in ${installedPaths().join(' ')}; do [ -f "$f" ] && echo "sum $f $(sha256sum <"$f" | cut -c1-64)"; done`,
		'[ -x /usr/sbin/pvagent ] && echo "version=$(/usr/sbin/pvagent --version 2>&1 | head -n 1)"',
		`case $init in ${initKinds.map((k) => `${k}) ${serviceOf(k).status} 2>/dev/null ;;`).join(' ')} esac && echo running=yes || echo running=no`,
		`[ -e ${liveFile} ] && echo live=yes || echo live=no`,
		'true',
	].join('\n');
}

/** Printable text of at most `max` characters: a guest's words go to the user's terminal. */
export function printable(text: string, max = 120): string {
	const clean = text.replace(/[^\x20-\x7e]/g, '?');
	return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** Parse the probe's output; what does not fit the form is ignored, what is missing counts as absent. */
export function parseFacts(text: string): GuestFacts {
	const facts: GuestFacts = {
		kernel: '',
		arch: '',
		btf: false,
		uid: -1,
		sudo: false,
		port: false,
		shm: '',
		init: 'rcs',
		sums: new Map(),
		version: '',
		running: false,
		live: false,
	};
	const known = new Set(installedPaths());
	for (const line of text.split('\n').slice(0, 100)) {
		const sum = /^sum (\S+) ([0-9a-f]{64})$/.exec(line);
		if (sum?.[1] && sum[2] && known.has(sum[1])) {
			facts.sums.set(sum[1], sum[2]);
			continue;
		}
		const kv = /^([a-z]+)=(.*)$/.exec(line);
		if (!kv?.[1]) continue;
		const [, key, raw = ''] = kv;
		const value = printable(raw);
		if (key === 'btf' || key === 'sudo' || key === 'port' || key === 'running' || key === 'live') facts[key] = value === 'yes';
		else if (key === 'kernel' || key === 'arch' || key === 'version') facts[key] = value;
		else if (key === 'uid') facts.uid = /^\d{1,10}$/.test(value) ? Number(value) : -1;
		else if (key === 'shm') facts.shm = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(value) ? value : '';
		else if (key === 'init') facts.init = initKinds.find((k) => k === value) ?? facts.init;
	}
	return facts;
}

export interface Check {
	name: string;
	ok: boolean;
	detail: string;
}

/** The checks a guest must pass before anything is installed, each with what it found or why it fails. */
export function checkGuest(facts: GuestFacts): Check[] {
	const release = /^(\d+)\.(\d+)/.exec(facts.kernel);
	const [major, minor] = release ? [Number(release[1]), Number(release[2])] : [0, 0];
	const recent = major > minimumKernel[0] || (major === minimumKernel[0] && minor >= minimumKernel[1]);
	const min = minimumKernel.join('.');
	return [
		{
			name: 'kernel',
			ok: recent && facts.arch === 'x86_64',
			detail: !release
				? `the guest did not say its kernel release ("${facts.kernel}")`
				: facts.arch !== 'x86_64'
					? `${facts.kernel} on ${facts.arch}: the agent is built for x86_64`
					: recent
						? `${facts.kernel} (${facts.arch})`
						: `${facts.kernel} is older than ${min}: pvrun's programs need ${min} or later`,
		},
		{
			name: 'BTF',
			ok: facts.btf,
			detail: facts.btf
				? '/sys/kernel/btf/vmlinux'
				: "/sys/kernel/btf/vmlinux is missing: the guest kernel has no BTF (CONFIG_DEBUG_INFO_BTF), which pvrun's programs need",
		},
		{
			name: 'privileges',
			ok: facts.uid === 0 || facts.sudo,
			detail:
				facts.uid === 0
					? 'root'
					: facts.sudo
						? `uid ${facts.uid}, sudo without a password`
						: `uid ${facts.uid} without sudo: installing a service and loading BPF need root`,
		},
		{
			name: 'channel',
			ok: facts.port,
			detail: facts.port
				? `virtio-serial port ${agentPortName}`
				: `no virtio-serial port ${agentPortName}: is the VM started by pvrun (and virtio_console loaded)?`,
		},
		{
			name: 'shared memory',
			ok: facts.shm !== '',
			detail: facts.shm ? `IVSHMEM device ${facts.shm}` : 'no IVSHMEM device (PCI 1af4:1110): is the VM started by pvrun?',
		},
	];
}

export function formatCheck(c: Check): string {
	return `  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`;
}

export interface InstallPlan {
	/** Files whose guest copy is missing or differs. */
	upload: AgentFile[];
	/** Whether the service file must be written. */
	service: boolean;
	/** Whether the agent must be (re)started: something changed, or it does not run. */
	restart: boolean;
}

/** What an install must change, given what the guest has: nothing, if it is all there and running. */
export function planInstall(facts: GuestFacts, files: readonly AgentFile[], localSums: ReadonlyMap<string, string>): InstallPlan {
	const upload = files.filter((f) => facts.sums.get(f.remote) !== localSums.get(f.remote));
	const svc = serviceOf(facts.init);
	const service = facts.sums.get(svc.file) !== crypto.createHash('sha256').update(svc.content).digest('hex');
	return {upload, service, restart: upload.length > 0 || service || !facts.running};
}

/** The command that puts `content` at `dest` (mode `mode`) from standard input, atomically: a new file beside it, then a rename. */
export function uploadCommand(dest: string, mode: number): string {
	const tmp = path.posix.join(path.posix.dirname(dest), `.${path.posix.basename(dest)}.pvrun-new`);
	return `umask 022 && mkdir -p ${path.posix.dirname(dest)} && cat >${tmp} && chmod ${mode.toString(8)} ${tmp} && mv -f ${tmp} ${dest}`;
}

/** A command run as root: directly, or through sudo -n. */
export function asRoot(facts: Pick<GuestFacts, 'uid'>, command: string): string {
	const quoted = `'${command.replace(/'/g, `'\\''`)}'`;
	return facts.uid === 0 ? `sh -c ${quoted}` : `sudo -n sh -c ${quoted}`;
}

export class GuestCheckError extends PvrunError {}

export interface Reporter {
	line(text: string): void;
}

/** What the guest says of itself (probeScript), in one round trip. */
export async function probe(session: SshSession): Promise<GuestFacts> {
	return parseFacts((await session.run(probeScript(), {timeoutMs: 30_000})).stdout);
}

/** Run the checks, print them, and throw (exit 1) naming the failed ones. */
export function requireChecks(facts: GuestFacts, report: Reporter, what: string): void {
	const checks = checkGuest(facts);
	for (const c of checks) report.line(formatCheck(c));
	const failed = checks.filter((c) => !c.ok);
	if (failed.length)
		throw new GuestCheckError(
			`the guest fails ${failed.length === 1 ? 'a check' : `${failed.length} checks`} (${failed.map((c) => c.name).join(', ')}): ${what}`,
		);
}

/** Whether a run's status is 0; otherwise an error naming what failed with the guest's first words of complaint. */
export async function mustRun(session: SshSession, command: string, what: string, input?: Buffer | string): Promise<void> {
	const r = await session.run(command, {...(input === undefined ? {} : {input}), timeoutMs: 120_000});
	if (r.code !== 0)
		throw new PvrunError(
			`${formatTarget(session.target)}: ${what} failed (exit ${r.code}): ${printable(r.stderr.trim().split('\n')[0] ?? '') || 'no message'}`,
		);
}

export interface InstallOutcome {
	changed: boolean;
	facts: GuestFacts;
	/** When the agent was (re)started, ms since the epoch. */
	startedAt?: number;
}

/** Install (or upgrade) the agent as `plan` says; returns what the guest has afterwards. */
export async function install(session: SshSession, report: Reporter, files: readonly AgentFile[] = agentFiles()): Promise<InstallOutcome> {
	const missing = files.filter((f) => !fs.existsSync(f.local));
	if (missing.length) throw new PvrunError(`${missing.map((f) => path.relative(packageRoot, f.local)).join(', ')} missing: run make build`);
	const facts = await probe(session);
	requireChecks(facts, report, 'nothing installed');
	const localSums = new Map(await Promise.all(files.map(async (f) => [f.remote, await sha256File(f.local)] as const)));
	const plan = planInstall(facts, files, localSums);
	if (!plan.restart) return {changed: false, facts};
	for (const f of plan.upload) {
		await mustRun(session, asRoot(facts, uploadCommand(f.remote, f.mode)), `copying ${f.remote}`, fs.readFileSync(f.local));
		report.line(`  put   ${f.remote}`);
	}
	const svc = serviceOf(facts.init);
	if (plan.service) {
		await mustRun(session, asRoot(facts, uploadCommand(svc.file, svc.file.endsWith('.service') ? 0o644 : 0o755)), `writing ${svc.file}`, svc.content);
		await mustRun(session, asRoot(facts, svc.enable), `enabling ${svc.file}`);
		report.line(`  put   ${svc.file} (${facts.init === 'systemd' ? 'systemd unit' : 'init script'}, enabled)`);
	}
	const startedAt = Date.now();
	await mustRun(session, asRoot(facts, svc.restart), 'starting the agent');
	report.line(`  start pvagent (${svc.restart})`);
	return {changed: true, facts: await probe(session), startedAt};
}

/** Wait until the guest agent has pvrun's LIVE answer (the live file), at most `timeoutMs`. */
export async function waitLive(session: SshSession, timeoutMs: number): Promise<boolean> {
	const deadline = performance.now() + timeoutMs;
	for (;;) {
		const r = await session.run(`[ -e ${liveFile} ]`, {timeoutMs: 30_000});
		if (r.code === 0) return true;
		if (performance.now() > deadline) return false;
		await new Promise((resolve) => setTimeout(resolve, 300));
	}
}

/** Stop the agent and remove the service and the files; true if anything was there. */
export async function uninstall(session: SshSession, report: Reporter, files: readonly AgentFile[] = agentFiles()): Promise<boolean> {
	const facts = await probe(session);
	const svc = serviceOf(facts.init);
	const present = files.filter((f) => facts.sums.has(f.remote));
	const hasService = facts.sums.has(svc.file);
	if (!present.length && !hasService) return false;
	if (facts.uid !== 0 && !facts.sudo) throw new GuestCheckError(`uid ${facts.uid} without sudo cannot remove the agent`);
	if (hasService) {
		await mustRun(session, asRoot(facts, svc.disable), `removing ${svc.file}`);
		report.line(`  stop pvagent; removed ${svc.file}`);
	}
	if (present.length) {
		await mustRun(session, asRoot(facts, `rm -f ${present.map((f) => f.remote).join(' ')}; rmdir /usr/include/pvrun 2>/dev/null; true`), 'removing the files');
		for (const f of present) report.line(`  rm    ${f.remote}`);
	}
	return true;
}

/** The pvrun VM on this machine a target reaches, by QEMU's user-networking forward of its port (hostfwd=tcp:ADDR:PORT-:22). */
export function vmForwarding<T extends {qemuPid: number}>(target: SshTarget, vms: readonly T[], cmdline: (pid: number) => string[] | undefined): T[] {
	const loopback = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(target.host);
	return vms.filter((vm) => {
		const args = cmdline(vm.qemuPid) ?? [];
		return args.some((arg) =>
			[...arg.matchAll(/hostfwd=tcp:([^:,]*):(\d+)-/g)].some(
				([, addr = '', port]) =>
					Number(port) === target.port && (addr === target.host || ((addr === '' || addr === '0.0.0.0' || /^127\./.test(addr)) && loopback)),
			),
		);
	});
}

/** A process's command line from /proc, undefined if gone or unreadable. */
export function procCmdline(pid: number): string[] | undefined {
	try {
		return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
	} catch {
		return undefined;
	}
}
