// The host end of the shared-memory area: a file in /dev/shm that QEMU backs
// the IVSHMEM BAR with. The host creates it, writes the layout header before
// the guest starts, maps it, and removes it when the VM ends.
import crypto from 'node:crypto';
import fs from 'node:fs';
import {mapSharedFile, type SharedMapping} from '../host/libc.js';
import {ShmError} from '../util/errors.js';
import {
	Header,
	Slot,
	cellCount,
	cellSize,
	cellsOffset,
	headerSize,
	recordSize,
	ringEntries,
	ringOffset,
	shmMagic,
	shmSize,
	shmVersion,
	slotSize,
	slotsOffset,
} from './layout.js';
import {hintFeatures} from '../hints/index.js';

export interface ShmArea {
	path: string;
	size: number;
	nrVcpus: number;
	hostEpoch: bigint;
	view: DataView;
	u32: Uint32Array;
	u64: BigUint64Array;
	/** Rewrite the host-owned header fields (after a guest scribbled on them). */
	restoreHeader(): void;
	/** Whether every host-owned header field (bytes 0–63) holds what restoreHeader writes. */
	headerIntact(): boolean;
	/** Unmap, keeping the file (another process maps it next). */
	unmap(): void;
	/** Unmap and delete the file (idempotent). */
	remove(): void;
}

/** Create, initialise and map a fresh area at `path` for a VM with `nrVcpus` vCPUs. */
export function createShmArea(path: string, nrVcpus: number, features: number = hintFeatures): ShmArea {
	let fd: number;
	try {
		fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
	} catch (error) {
		throw new ShmError(`cannot create shared memory ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, {cause: error});
	}
	let mapping: SharedMapping | undefined;
	try {
		fs.ftruncateSync(fd, shmSize);
		fs.closeSync(fd);
		mapping = mapSharedFile(path, shmSize);
	} catch (error) {
		try {
			fs.closeSync(fd);
		} catch {
			// already closed
		}
		fs.rmSync(path, {force: true});
		throw error;
	}
	const area = wrapArea(path, nrVcpus, mapping, crypto.randomBytes(8).readBigUInt64LE(0) | 1n, features);
	area.restoreHeader();
	for (let v = 0; v < nrVcpus; v++) area.view.setInt32(slotsOffset + v * slotSize + Slot.pcpu, -1, true);
	return area;
}

/**
 * Map an area that createShmArea made (in another process: pvrun's helper
 * maps what the pvrun that became QEMU created), with that area's host epoch.
 */
export function openShmArea(path: string, nrVcpus: number, hostEpoch: bigint, features: number = hintFeatures): ShmArea {
	return wrapArea(path, nrVcpus, mapSharedFile(path, shmSize), hostEpoch, features);
}

/** The ShmArea over a mapping of `path`. */
function wrapArea(path: string, nrVcpus: number, mapping: SharedMapping, hostEpoch: bigint, features: number): ShmArea {
	const view = new DataView(mapping.view);
	// The host-owned header fields (bytes 0–63) and their values: what restoreHeader writes and headerIntact checks.
	const u16s: Array<[number, number]> = [
		[Header.version, shmVersion],
		[Header.headerSize, headerSize],
	];
	const u32s: Array<[number, number]> = [
		[Header.magic, shmMagic],
		[Header.size, shmSize],
		[Header.features, features],
		[Header.nrVcpus, nrVcpus],
		[Header.slotSize, slotSize],
		[Header.slotsOffset, slotsOffset],
		[Header.ringOffset, ringOffset],
		[Header.ringEntries, ringEntries],
		[Header.recordSize, recordSize],
		[Header.cellsOffset, cellsOffset],
		[Header.cells, cellCount],
		[Header.cellSize, cellSize],
	];
	const restoreHeader = (): void => {
		for (const [offset, value] of u32s) view.setUint32(offset, value, true);
		for (const [offset, value] of u16s) view.setUint16(offset, value, true);
		view.setBigUint64(Header.hostEpoch, hostEpoch, true);
	};
	const headerIntact = (): boolean =>
		u32s.every(([offset, value]) => view.getUint32(offset, true) === value) &&
		u16s.every(([offset, value]) => view.getUint16(offset, true) === value) &&
		view.getBigUint64(Header.hostEpoch, true) === hostEpoch;
	let removed = false;
	return {
		path,
		size: shmSize,
		nrVcpus,
		hostEpoch,
		view,
		u32: new Uint32Array(mapping.view),
		u64: new BigUint64Array(mapping.view),
		restoreHeader,
		headerIntact,
		unmap: () => mapping.unmap(),
		remove() {
			if (removed) return;
			removed = true;
			mapping.unmap();
			fs.rmSync(path, {force: true});
		},
	};
}
