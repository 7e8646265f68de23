// withTempDir: the directory goes when the work settles, and when a signal ends the process first.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, {type Test} from 'tap';
import {packageRoot} from '../../src/util/paths.js';
import {withTempDir} from '../../src/bench/tempdir.js';

t.test('removed when the work returns or throws', async (t) => {
	const listeners = process.listenerCount('SIGINT');
	let seen = '';
	t.equal(
		await withTempDir('pvrun-test-', async (dir) => {
			seen = dir;
			fs.writeFileSync(path.join(dir, 'f'), 'x');
			return 7;
		}),
		7,
	);
	t.notOk(fs.existsSync(seen), 'gone after a return');
	await t.rejects(
		withTempDir('pvrun-test-', async (dir) => {
			seen = dir;
			throw new Error('boom');
		}),
		{message: 'boom'},
	);
	t.notOk(fs.existsSync(seen), 'gone after a throw');
	t.equal(process.listenerCount('SIGINT'), listeners, 'no signal listener left behind');
});

/** A Node child inside withTempDir, with `extra` run first; resolves with the directory it printed. */
function child(t: Pick<Test, 'teardown'>, extra = '') {
	const module = path.join(packageRoot, 'dist', 'bench', 'tempdir.js');
	const code = `${extra}; import(${JSON.stringify(module)}).then((m) => m.withTempDir('pvrun-test-', (dir) => { process.stdout.write(dir + '\\n'); return new Promise(() => setInterval(() => {}, 1000)); }))`;
	// env -i: tap's hooks would otherwise be loaded into the child, signal listeners and all.
	const proc = spawn('/usr/bin/env', ['-i', process.execPath, '-e', code], {stdio: ['ignore', 'pipe', 'inherit']});
	t.teardown(() => {
		if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
	});
	const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => proc.once('exit', (code, signal) => resolve({code, signal})));
	const dir = new Promise<string>((resolve, reject) => {
		let out = '';
		proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
			out += chunk;
			if (out.includes('\n')) resolve(out.trim());
		});
		void exited.then(() => reject(new Error(`child exited before printing: ${out}`)));
		setTimeout(() => reject(new Error('no directory in 10 s')), 10_000).unref();
	});
	return {proc, dir, exited};
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
	t.test(`${signal} while the work runs: the directory goes and the process dies of the signal`, async (t) => {
		const c = child(t);
		const dir = await c.dir;
		t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
		t.ok(fs.existsSync(dir), 'the directory exists while the work runs');
		c.proc.kill(signal);
		t.same(await c.exited, {code: null, signal}, `killed by ${signal}`);
		t.notOk(fs.existsSync(dir), 'the directory is gone');
	});
}

t.test('another listener for the signal: the directory goes, the process exits 143', async (t) => {
	const c = child(t, "process.on('SIGTERM', () => {})");
	const dir = await c.dir;
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	c.proc.kill('SIGTERM');
	t.same(await c.exited, {code: 143, signal: null});
	t.notOk(fs.existsSync(dir), 'the directory is gone');
});
