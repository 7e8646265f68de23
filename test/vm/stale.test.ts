// What a killed pvrun left is removed by the next one, and nothing that may
// still be in use: a run directory goes only when its pvrun is gone, it is
// over a minute old, and no QEMU listens on its QMP socket.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {removeStaleRuns} from '../../src/vm/stale.js';

/** A pid that no process has (a child that has exited and been reaped). */
async function deadPid(): Promise<number> {
	const child = spawn('true');
	await new Promise((resolve) => child.once('exit', resolve));
	return child.pid ?? 0;
}

t.test('leftovers of a gone pvrun are removed; live, young or listened-on ones stay', async (t) => {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-stale-'));
	const made: string[] = [];
	t.teardown(() => {
		fs.rmSync(root, {recursive: true, force: true});
		for (const name of made) fs.rmSync(path.join('/dev/shm', name), {force: true});
	});
	const dead = await deadPid();
	const old = new Date(Date.now() - 120_000);
	/** A run directory (and its shared memory) as pvrun `pid` leaves them. */
	const leave = (name: string, age: Date) => {
		fs.mkdirSync(path.join(root, name));
		fs.writeFileSync(path.join('/dev/shm', name), '');
		made.push(name);
		fs.utimesSync(path.join(root, name), age, age);
		fs.utimesSync(path.join('/dev/shm', name), age, age);
	};
	leave(`pvrun-${dead}-a00001`, old); // gone pvrun, nothing listens: stale
	leave(`pvrun-${process.pid}-a00002`, old); // this very process: alive
	leave(`pvrun-${dead}-a00003`, new Date()); // too young to tell
	leave(`pvrun-${dead}-a00004`, old); // a daemonized QEMU still listens on its QMP socket
	const server = net.createServer();
	await new Promise<void>((resolve) => server.listen(path.join(root, `pvrun-${dead}-a00004`, 'qmp.sock'), resolve));
	t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
	fs.utimesSync(path.join(root, `pvrun-${dead}-a00004`), old, old);
	fs.mkdirSync(path.join(root, 'pvrun-matrix-abc')); // not a run directory's name

	t.same(await removeStaleRuns(root), [`pvrun-${dead}-a00001`], 'only the stale one is removed');
	t.notOk(fs.existsSync(path.join(root, `pvrun-${dead}-a00001`)), 'its run directory is gone');
	t.notOk(fs.existsSync(path.join('/dev/shm', `pvrun-${dead}-a00001`)), 'and its shared memory');
	for (const name of [`pvrun-${process.pid}-a00002`, `pvrun-${dead}-a00003`, `pvrun-${dead}-a00004`]) {
		t.ok(fs.existsSync(path.join(root, name)) && fs.existsSync(path.join('/dev/shm', name)), `${name} stays`);
	}
	t.ok(fs.existsSync(path.join(root, 'pvrun-matrix-abc')), 'other names are not touched');

	// The QEMU that listened is gone (its socket file stays, nobody accepts on it): stale now.
	await new Promise<void>((resolve) => server.close(() => resolve()));
	fs.mkdirSync(path.join(root, `pvrun-${dead}-a00004`), {recursive: true});
	const sock = net.createServer();
	const file = path.join(root, `pvrun-${dead}-a00004`, 'qmp.sock');
	fs.rmSync(file, {force: true});
	await new Promise<void>((resolve) => sock.listen(file, resolve));
	// A socket file nobody listens on: bound, then its listener closed without unlinking (moved away and back).
	fs.renameSync(file, `${file}.away`);
	await new Promise<void>((resolve) => sock.close(() => resolve()));
	fs.renameSync(`${file}.away`, file);
	fs.utimesSync(path.join(root, `pvrun-${dead}-a00004`), old, old);
	t.same(await removeStaleRuns(root), [`pvrun-${dead}-a00004`], 'a QMP socket nobody listens on does not keep it');
});
