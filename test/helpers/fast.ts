// Stand-ins for what the fast path works with, all real: processes whose
// threads it pins, and QEMU's end of the kick port (a unix socket server).
import {spawn, type ChildProcess} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type {Test} from 'tap';
import {FastPath} from '../../src/fast/binding.js';
import {FloatGroup} from '../../src/pin/cpuset.js';
import {threadInProcess} from '../../src/host/libc.js';
import type {ShmArea} from '../../src/shm/area.js';
import {Slot, slotSize, slotsOffset} from '../../src/shm/layout.js';
import type {AffinityEngine} from '../../src/hints/affinity/engine.js';
import {within} from './pvrun-vm.js';

/**
 * For a Pinner whose stand-in vCPU "threads" are processes of their own: a
 * thread counts as the VM's while that process lives (pvrun asks whether it
 * is still QEMU's; see Pinner's `owns`).
 */
export const standIn = (_tgid: number, tid: number): boolean => threadInProcess(tid, tid);

/**
 * A float group (src/pin/cpuset.ts) over stand-ins `qemu` and `vcpus` on CPUs
 * `cpus`, closed with `t`; or why the host cannot have one (not root, no
 * cgroup v1 cpuset hierarchy).
 */
export function standInGroup(t: Test, qemu: number, vcpus: readonly number[], cpus: readonly number[]): FloatGroup | string {
	if (process.getuid?.() !== 0) return 'needs root';
	const group = FloatGroup.open(qemu, vcpus, cpus, {name: `pvrun-test.${process.pid}.${crypto.randomBytes(4).toString('hex')}`});
	if (typeof group !== 'string') t.teardown(() => void group.close());
	return group;
}

/** A process that only sleeps: its pid is a thread id the fast path may pin. */
export function sleeper(t: Test): ChildProcess {
	const child = spawn('sleep', ['120'], {stdio: 'ignore'});
	t.teardown(() => void child.kill('SIGKILL'));
	return child;
}

/** QEMU's end of the kick port: a unix socket server; `kick()` writes one byte to the connected fast path. */
export async function kickServer(t: Test): Promise<{path: string; connected: Promise<net.Socket>}> {
	const file = path.join(os.tmpdir(), `pvrun-test-kick-${process.pid}-${crypto.randomBytes(4).toString('hex')}.sock`);
	let resolve: (s: net.Socket) => void = () => {};
	const connected = new Promise<net.Socket>((r) => (resolve = r));
	const sockets: net.Socket[] = [];
	const server = net.createServer((s) => {
		sockets.push(s);
		resolve(s);
	});
	await new Promise<void>((r) => server.listen(file, r));
	t.teardown(() => {
		for (const s of sockets) s.destroy();
		server.close();
		fs.rmSync(file, {force: true});
	});
	return {path: file, connected};
}

export function feedback(a: ShmArea, v: number): {seq: bigint; state: number; pcpu: number; hintTid: number; recordSeq: bigint} {
	const base = slotsOffset + v * slotSize;
	return {
		seq: a.view.getBigUint64(base + Slot.feedbackSeq, true),
		state: a.view.getUint32(base + Slot.state, true),
		pcpu: a.view.getInt32(base + Slot.pcpu, true),
		hintTid: a.view.getUint32(base + Slot.hintTid, true),
		recordSeq: a.view.getBigUint64(base + Slot.recordSeq, true),
	};
}

/** `connected` within 2 s, or an error. */
export async function connectedWithin(connected: Promise<net.Socket>): Promise<net.Socket> {
	return Promise.race([connected, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the fast path did not connect within 2 s')), 2000))]);
}

/** Wait until `ok()` (`within`, looking every `stepMs`), at most `ms`, or throw naming `what`. */
export async function waitUntil(what: string, ok: () => boolean, ms = 2000, stepMs = 5): Promise<void> {
	if ((await within(ms, ok, stepMs)) < 0) throw new Error(`not within ${ms} ms: ${what}`);
}

/**
 * The native fast path for `engine`, kicked through a real socket as QEMU's
 * end of the kick port would: `kick()` writes a byte and waits (2 s at most)
 * until the fast path has woken the engine. The fast path stops with the test,
 * before what was set up earlier (tap runs teardowns last first): an engine
 * then stops with nothing left to take from it.
 */
export async function attachFastPath(
	t: Test,
	shm: ShmArea,
	engine: AffinityEngine,
	group?: FloatGroup,
): Promise<{fast: FastPath; socket: net.Socket; kick: () => Promise<void>}> {
	const server = await kickServer(t);
	let wakes = 0;
	const fast = FastPath.start(shm.path, server.path, 0, () => {
		wakes++;
		engine.kick();
	});
	t.teardown(() => fast.stop());
	fast.group(group?.paths());
	engine.setFastPath(fast);
	const socket = await connectedWithin(server.connected);
	const kick = async (): Promise<void> => {
		const before = wakes;
		socket.write('k');
		await waitUntil('the engine is woken', () => wakes > before);
	};
	return {fast, socket, kick};
}
