// A hostile guest in a process of its own, for tests that measure what a flood costs the
// process that reads it: it maps the area, listens on the kick socket's path (QEMU's end),
// and once the fast path connects, writes a record that moves a thread between vCPUs 0 and 1
// and a kick byte after each, as fast as it can, for the given milliseconds.
// Usage: node --import=tsx flood-guest.ts SHM NR_VCPUS EPOCH KICK_PATH MS
import net from 'node:net';
import {openShmArea} from '../../src/shm/area.js';
import {Guest, maskOf} from './guest-ring.js';

const [shmPath = '', nrVcpus = '2', epoch = '0', kickPath = '', ms = '1000'] = process.argv.slice(2);
const guest = new Guest(openShmArea(shmPath, Number(nrVcpus), BigInt(epoch)));
const server = net.createServer((socket) => {
	socket.on('error', () => {});
	void (async () => {
		process.stdout.write('flooding\n');
		const end = performance.now() + Number(ms);
		let i = 0;
		while (performance.now() < end) {
			guest.append({tid: 300, tgid: 300, mask: maskOf(i % 2)});
			i++;
			if (!socket.write('k')) await new Promise((resolve) => setTimeout(resolve, 1));
			if (i % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
		}
		process.stdout.write(`done ${i}\n`);
		server.close();
		socket.destroy();
	})();
});
server.listen(kickPath, () => process.stdout.write('listening\n'));
