// File descriptors pvrun inherited from its parent, beyond stdin, stdout and
// stderr. A process manager hands QEMU pre-opened descriptors and names them
// by number on the command line (libvirt: `-chardev socket,id=charmonitor,
// fd=23,server=on,wait=off`, `-netdev tap,fd=25,vhostfd=27`, `-add-fd`), so
// QEMU must receive each of them under the same number.
//
// Telling them apart from Node's own descriptors: everything Node opens is
// close-on-exec, and a descriptor inherited across exec is not -- except that
// Node's start-up (libuv's uv_disable_stdio_inheritance) marks descriptors
// 0-15, and from 16 on every one up to the first gap, close-on-exec before
// any JavaScript runs. In that range an inherited descriptor looks like one
// of Node's, so there the kind decides: Node's own are epoll and eventfd
// instances (anon_inode:...), pipes whose both ends it holds, and /dev/null
// (libuv keeps one open for running out of descriptors); anything else there
// (a socket, a tap device, a file, one end of a pipe) is inherited.
// Read once, when this module is first imported, before pvrun opens anything.
import fs from 'node:fs';
import type {StdioOptions} from 'node:child_process';
import {clearCloseOnExec, setCloseOnExec, setNonBlocking} from '../host/libc.js';

/** What /proc says about one open descriptor. */
export interface FdEntry {
	fd: number;
	/** FD_CLOEXEC is set (O_CLOEXEC, 02000000 octal, in the fdinfo flags line). */
	cloexec: boolean;
	/** The /proc/<pid>/fd/<n> link: a path, 'socket:[ino]', 'pipe:[ino]', 'anon_inode:[eventfd]'... */
	target: string;
	/** O_NONBLOCK is set on its open file description (shared with every process holding it). */
	nonBlocking?: boolean;
}

/** libuv marks descriptors 0..15 close-on-exec unconditionally at start-up, then on until the first gap. */
const libuvUnconditional = 16;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;

/**
 * The inherited descriptors among `entries` (all of a process's open ones),
 * in ascending order; `channelFd` is Node's IPC channel, which is never one.
 */
export function classifyFds(entries: readonly FdEntry[], channelFd?: number): number[] {
	const open = new Set(entries.map((e) => e.fd));
	// The first gap at or after 16 ends the range libuv marked (the open set now can only have more).
	let markedEnd = libuvUnconditional;
	while (open.has(markedEnd)) markedEnd++;
	const pipeEnds = new Map<string, number>();
	for (const e of entries) if (e.target.startsWith('pipe:')) pipeEnds.set(e.target, (pipeEnds.get(e.target) ?? 0) + 1);
	const nodesOwn = (e: FdEntry): boolean => e.target.startsWith('anon_inode:') || (pipeEnds.get(e.target) ?? 0) >= 2 || e.target === '/dev/null';
	return entries
		.filter((e) => e.fd > 2 && e.fd !== channelFd)
		.filter((e) => !e.cloexec || (e.fd < markedEnd && !nodesOwn(e)))
		.map((e) => e.fd)
		.sort((a, b) => a - b);
}

/** This process's open descriptors from /proc/self (none if /proc is not there). */
export function readFdEntries(): FdEntry[] {
	let names: string[];
	try {
		names = fs.readdirSync('/proc/self/fd');
	} catch {
		return [];
	}
	const entries: FdEntry[] = [];
	for (const name of names) {
		const fd = Number(name);
		if (!Number.isSafeInteger(fd)) continue;
		try {
			// readlink first (it opens nothing): the directory listing's own descriptor is closed by now and fails here.
			const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
			if (target.startsWith('/proc/')) continue;
			const flags = /^flags:\s*([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
			if (flags === undefined) continue;
			const bits = parseInt(flags, 8);
			entries.push({fd, cloexec: (bits & O_CLOEXEC) !== 0, target, nonBlocking: (bits & O_NONBLOCK) !== 0});
		} catch {
			// closed meanwhile
		}
	}
	return entries;
}

/** The descriptor of Node's IPC channel, when a Node parent started pvrun with one. */
function ipcChannelFd(): number | undefined {
	const fd = (process.channel as {fd?: unknown} | undefined)?.fd;
	return typeof fd === 'number' ? fd : undefined;
}

const startEntries = readFdEntries();

/** The descriptors (> 2) pvrun inherited, found when this module was first imported. */
export const inheritedFds: readonly number[] = Object.freeze(classifyFds(startEntries, ipcChannelFd()));

/**
 * Whether stdin, stdout and stderr were non-blocking when pvrun started.
 * Writing to a pipe through process.stdout/stderr makes libuv set O_NONBLOCK
 * on it, which every process sharing the pipe then sees; Node undoes that
 * when it exits, and so must pvrun before it becomes QEMU.
 */
const startNonBlocking: ReadonlyMap<number, boolean> = new Map(startEntries.filter((e) => e.fd <= 2).map((e) => [e.fd, e.nonBlocking === true]));

/**
 * spawn()'s stdio for QEMU: stdin, stdout and stderr, then each inherited
 * descriptor at its own number ('ignore' for the numbers between).
 */
export function qemuStdio(fds: readonly number[] = inheritedFds): StdioOptions {
	const stdio: Array<'inherit' | 'ignore' | number> = ['inherit', 'inherit', 'inherit'];
	const max = Math.max(2, ...fds);
	for (let n = 3; n <= max; n++) stdio.push(fds.includes(n) ? n : 'ignore');
	return stdio;
}

/**
 * Make this process's descriptors what QEMU must find after pvrun execs it
 * in place: stdin, stdout, stderr (O_NONBLOCK as when pvrun started), every
 * inherited descriptor, and `extra`, all kept across exec; everything else
 * pvrun (Node) opened is close-on-exec already and goes.
 */
export function keepForExec(extra: readonly number[] = [], fds: readonly number[] = inheritedFds): void {
	for (const fd of [0, 1, 2]) {
		clearCloseOnExec(fd);
		const was = startNonBlocking.get(fd);
		if (was !== undefined) setNonBlocking(fd, was);
	}
	for (const fd of [...fds, ...extra]) clearCloseOnExec(fd);
}

/**
 * Mark the inherited descriptors close-on-exec, so that a process pvrun starts
 * gets them only when handed them explicitly (libuv does not close the others
 * in a child). Before starting pvrun's detached process, which must not hold them.
 */
export function keepFromChildren(fds: readonly number[] = inheritedFds): void {
	for (const fd of fds) setCloseOnExec(fd);
}
