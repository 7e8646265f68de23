// The shared-memory area's host end (src/shm/area.ts) on real files in
// /dev/shm: what createShmArea writes (the header at the offsets of
// src/shm/layout.ts, every vCPU slot floating), that it never takes over an
// existing file, openShmArea mapping the same bytes (as pvrun's helper maps
// what the pvrun that became QEMU created), restoreHeader after a guest
// scribbled on the header, unmap keeping the file and remove deleting it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import t, {type Test} from 'tap';
import {createShmArea, openShmArea, type ShmArea} from '../../src/shm/area.js';
import {hintFeatures} from '../../src/hints/index.js';
import {
	Feature,
	Header,
	Slot,
	headerSize,
	recordSize,
	ringEntries,
	ringOffset,
	shmMagic,
	shmSize,
	shmVersion,
	slotSize,
	slotsOffset,
} from '../../src/shm/layout.js';
import {ShmError} from '../../src/util/errors.js';

/** A fresh path under /dev/shm, removed when the test ends. */
function shmPath(t: Pick<Test, 'teardown'>): string {
	const file = `/dev/shm/pvrun-test-area-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
	t.teardown(() => fs.rmSync(file, {force: true}));
	return file;
}

/** An area at a fresh path, removed when the test ends. */
function created(t: Pick<Test, 'teardown'>, nrVcpus: number): ShmArea {
	const a = createShmArea(shmPath(t), nrVcpus);
	t.teardown(() => a.remove());
	return a;
}

/** The host-owned header fields as the area's view has them. */
function headerOf(a: ShmArea) {
	const v = a.view;
	return {
		magic: v.getUint32(Header.magic, true),
		version: v.getUint16(Header.version, true),
		headerSize: v.getUint16(Header.headerSize, true),
		size: v.getUint32(Header.size, true),
		features: v.getUint32(Header.features, true),
		nrVcpus: v.getUint32(Header.nrVcpus, true),
		slotSize: v.getUint32(Header.slotSize, true),
		slotsOffset: v.getUint32(Header.slotsOffset, true),
		ringOffset: v.getUint32(Header.ringOffset, true),
		ringEntries: v.getUint32(Header.ringEntries, true),
		recordSize: v.getUint32(Header.recordSize, true),
		hostEpoch: v.getBigUint64(Header.hostEpoch, true),
	};
}

const expectedHeader = (nrVcpus: number, hostEpoch: bigint) => ({
	magic: shmMagic,
	version: shmVersion,
	headerSize,
	size: shmSize,
	features: hintFeatures,
	nrVcpus,
	slotSize,
	slotsOffset,
	ringOffset,
	ringEntries,
	recordSize,
	hostEpoch,
});

const pcpuOf = (a: ShmArea, v: number) => a.view.getInt32(slotsOffset + v * slotSize + Slot.pcpu, true);

t.test('createShmArea: a file of the layout size, the header written, every slot floating', async (t) => {
	const a = created(t, 3);
	const stat = fs.statSync(a.path);
	t.equal(stat.size, shmSize, 'the file has the layout size');
	t.equal(stat.mode & 0o777, 0o600, "and is the user's alone");
	t.equal(a.size, shmSize, 'the area says its size');
	t.equal(a.nrVcpus, 3, 'and its vCPUs');
	t.equal(a.hostEpoch & 1n, 1n, 'the host epoch is odd (never 0)');
	t.same(headerOf(a), expectedHeader(3, a.hostEpoch), 'every host-owned header field');
	t.ok((hintFeatures & Feature.affinity) !== 0, 'the features name the affinity hint');
	t.same(
		[0, 1, 2].map((v) => pcpuOf(a, v)),
		[-1, -1, -1],
		'pcpu = -1 in every slot',
	);
	t.equal(pcpuOf(a, 3), 0, 'the slot past the last vCPU is left zero');
	const file = fs.readFileSync(a.path);
	t.equal(file.readUInt32LE(Header.magic), shmMagic, 'the header is in the file itself, not only the mapping');
	t.equal(file.readBigUInt64LE(Header.hostEpoch), a.hostEpoch, 'with the epoch the area says');
	t.equal(file.readBigUInt64LE(Header.guestEpoch), 0n, 'the guest-owned fields start zero');
	t.equal(file.readBigUInt64LE(Header.ringHead), 0n, 'the ring is empty');
	t.ok(
		file.subarray(ringOffset).every((b) => b === 0),
		'the ring starts zero',
	);
	t.not(created(t, 3).hostEpoch, a.hostEpoch, 'each area has its own epoch');
});

t.test('createShmArea refuses an existing file with a ShmError, and leaves it alone', async (t) => {
	const file = shmPath(t);
	fs.writeFileSync(file, 'another VM', {mode: 0o644});
	t.throws(() => createShmArea(file, 2), {constructor: ShmError, message: `cannot create shared memory ${file}: EEXIST`, cause: {code: 'EEXIST'}}, 'EEXIST');
	t.equal(fs.readFileSync(file, 'utf8'), 'another VM', 'its content is untouched');
	t.equal(fs.statSync(file).mode & 0o777, 0o644, 'and its mode');
	const dir = `/dev/shm/pvrun-test-no-such-dir-${process.pid}/area`;
	t.throws(() => createShmArea(dir, 2), {constructor: ShmError, message: /: ENOENT$/}, 'a path whose directory does not exist');
});

t.test('openShmArea maps the same bytes, with the given host epoch', async (t) => {
	const a = created(t, 2);
	const b = openShmArea(a.path, 2, a.hostEpoch);
	t.teardown(() => b.unmap());
	t.equal(b.path, a.path, 'the same file');
	t.equal(b.hostEpoch, a.hostEpoch, 'the given epoch');
	t.same(headerOf(b), expectedHeader(2, a.hostEpoch), 'the header the creator wrote');
	a.view.setUint32(ringOffset + 8, 0xdeadbeef, true);
	t.equal(b.view.getUint32(ringOffset + 8, true), 0xdeadbeef, "a write through one mapping shows in the other's");
	Atomics.store(b.u64, Header.ringTail / 8, 42n);
	t.equal(Atomics.load(a.u64, Header.ringTail / 8), 42n, 'and the other way, through the 64-bit view');
	b.view.setInt32(slotsOffset + Slot.pcpu, 1, true);
	t.equal(pcpuOf(a, 0), 1, 'a slot written through the second mapping');

	const other = openShmArea(a.path, 2, 12345n);
	t.teardown(() => other.unmap());
	t.equal(other.hostEpoch, 12345n, 'opening does not read the epoch: the caller gives it');
	t.equal(other.view.getBigUint64(Header.hostEpoch, true), a.hostEpoch, 'nor write the header');
	t.throws(() => openShmArea(`${a.path}-missing`, 2, 1n), {constructor: ShmError, message: /ENOENT/}, 'a missing file');
});

t.test('restoreHeader rewrites what a guest scribbled on, and only the host-owned fields', async (t) => {
	const a = created(t, 4);
	const guestWrites: [number, bigint][] = [
		[Header.guestEpoch, 77n],
		[Header.ringHead, 5n],
		[Header.agentPid, 300n],
	];
	for (const [at, value] of guestWrites) a.view.setBigUint64(at, value, true);
	a.view.setUint32(Header.magic, 0x41414141, true);
	a.view.setUint32(Header.nrVcpus, 200, true);
	a.view.setUint32(Header.ringEntries, 3, true);
	a.view.setBigUint64(Header.hostEpoch, 0n, true);
	t.not(headerOf(a).magic, shmMagic, 'scribbled');
	a.restoreHeader();
	t.same(headerOf(a), expectedHeader(4, a.hostEpoch), 'the header is whole again');
	t.same(
		guestWrites.map(([at]) => a.view.getBigUint64(at, true)),
		guestWrites.map(([, value]) => value),
		'the guest-owned fields keep what the guest wrote',
	);
	t.same(
		[0, 1, 2, 3].map((v) => pcpuOf(a, v)),
		[-1, -1, -1, -1],
		'the slots are not touched',
	);
});

t.test('unmap keeps the file; remove deletes it, and again is no error', async (t) => {
	const a = created(t, 2);
	a.view.setUint32(ringOffset, 0xc0ffee, true);
	a.unmap();
	t.ok(fs.existsSync(a.path), 'unmap keeps the file');
	t.equal(a.view.getUint32(Header.magic, true), 0, 'the old view reads zeros, not the file');
	t.doesNotThrow(() => a.unmap(), 'unmap again is harmless');
	const b = openShmArea(a.path, 2, a.hostEpoch);
	t.equal(b.view.getUint32(ringOffset, true), 0xc0ffee, 'another mapping finds what was written');
	t.same(headerOf(b), expectedHeader(2, a.hostEpoch), 'and the header');
	b.remove();
	t.notOk(fs.existsSync(a.path), 'remove deletes the file');
	t.doesNotThrow(() => b.remove(), 'remove again');
	t.doesNotThrow(() => a.remove(), "and the first area's remove, of a file already gone");
	t.notOk(fs.existsSync(a.path), 'still gone');
	fs.writeFileSync(a.path, 'a new VM');
	b.remove();
	t.equal(fs.readFileSync(a.path, 'utf8'), 'a new VM', "remove acts once: a later file at the same path is not the area's to delete");
});
