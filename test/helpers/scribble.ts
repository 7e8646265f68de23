// The host side of a hostile guest: garbage written straight into a VM's shared-memory file,
// as fast as pwrite(2) goes, where a guest with a buggy or hostile agent could write it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import {Header} from '../../src/shm/layout.js';

/** Ring counters a hostile writer likes: zero, just past 2^52, all ones, and random ones (huge, or behind the host's tail). */
const counters = [0n, 2n ** 52n, 2n ** 64n - 1n];

/**
 * For `ms`, write garbage into `file`: one write in ten sets `ring_head` or `ring_tail` to a
 * counter from above or a random one, the rest put 8 random bytes at a random aligned offset
 * (header, slots, ring and all). Yields to the event loop between batches. The writes made.
 */
export async function scribble(file: string, ms: number): Promise<number> {
	const fd = fs.openSync(file, 'r+');
	const size = fs.fstatSync(fd).size;
	const buf = Buffer.alloc(8);
	const end = performance.now() + ms;
	let writes = 0;
	try {
		while (performance.now() < end) {
			for (let i = 0; i < 2000; i++, writes++) {
				crypto.randomFillSync(buf);
				if (i % 10 === 0) {
					const pick = counters[crypto.randomInt(counters.length + 1)];
					if (pick !== undefined) buf.writeBigUInt64LE(pick);
					fs.writeSync(fd, buf, 0, 8, i % 20 === 0 ? Header.ringHead : Header.ringTail);
				} else fs.writeSync(fd, buf, 0, 8, crypto.randomInt(size / 8) * 8);
			}
			await new Promise((resolve) => setImmediate(resolve));
		}
	} finally {
		fs.closeSync(fd);
	}
	return writes;
}
