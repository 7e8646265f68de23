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
	const restoreHeader = (): void => {
		view.setUint32(Header.magic, shmMagic, true);
		view.setUint16(Header.version, shmVersion, true);
		view.setUint16(Header.headerSize, headerSize, true);
		view.setUint32(Header.size, shmSize, true);
		view.setUint32(Header.features, features, true);
		view.setUint32(Header.nrVcpus, nrVcpus, true);
		view.setUint32(Header.slotSize, slotSize, true);
		view.setUint32(Header.slotsOffset, slotsOffset, true);
		view.setUint32(Header.ringOffset, ringOffset, true);
		view.setUint32(Header.ringEntries, ringEntries, true);
		view.setUint32(Header.recordSize, recordSize, true);
		view.setBigUint64(Header.hostEpoch, hostEpoch, true);
		view.setUint32(Header.cellsOffset, cellsOffset, true);
		view.setUint32(Header.cells, cellCount, true);
		view.setUint32(Header.cellSize, cellSize, true);
	};
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
		unmap: () => mapping.unmap(),
		remove() {
			if (removed) return;
			removed = true;
			mapping.unmap();
			fs.rmSync(path, {force: true});
		},
	};
}
