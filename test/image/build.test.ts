// The image builder against a private cache: cold build, cache hit, corrupt
// cache, and a failing build that must leave nothing half-written.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {execFileSync} from 'node:child_process';
import {ensureImage, inPool, resolveInside, stageWhole} from '../../src/image/build.js';
import {imagesDir} from '../../src/image/cache.js';
import {packageRoot} from '../../src/util/paths.js';
import type {Progress} from '../../src/util/progress.js';

const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-cache-'));
t.teardown(() => fs.rmSync(cache, {recursive: true, force: true}));

const messages: string[] = [];
const progress: Progress = {
	step: (text) => ({update() {}, done: (d) => void messages.push(`${text}: ${d ?? 'done'}`), fail: () => void messages.push(`${text}: failed`)}),
	info: (text) => void messages.push(text),
};

t.test('cold build, then a cache hit', async (t) => {
	// Two images of an older pvrun, last used 30 and 40 days ago: the build keeps the newer.
	for (const [key, days] of [
		['00000000000000a1', 30],
		['00000000000000a2', 40],
	] as const) {
		const dir = path.join(imagesDir(cache), key);
		fs.mkdirSync(dir, {recursive: true});
		fs.writeFileSync(path.join(dir, 'manifest.json'), '{}');
		const when = new Date(Date.now() - days * 24 * 3600 * 1000);
		fs.utimesSync(path.join(dir, 'manifest.json'), when, when);
	}
	let started = performance.now();
	const cold = await ensureImage({cache, progress});
	const coldSeconds = (performance.now() - started) / 1000;
	t.comment(`cold image build (downloads included): ${coldSeconds.toFixed(1)} s`);
	t.equal(cold.fromCache, false);
	t.ok(coldSeconds <= 120, 'cold build within 120 s');
	t.ok(fs.statSync(cold.kernel).size > 1e6, 'kernel present');
	t.ok(fs.statSync(cold.initrd).size > 1e6, 'initrd present');
	t.match(cold.manifest.kernelRelease, /^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
	t.same(fs.readdirSync(imagesDir(cache)).sort(), ['00000000000000a1', cold.key].sort(), 'the image unused for 40 days is pruned, the newest other kept');
	t.ok(messages.includes('removed 1 image(s) unused for 14 days: 00000000000000a2'), 'and the build says so');

	started = performance.now();
	const warm = await ensureImage({cache, progress});
	const warmSeconds = (performance.now() - started) / 1000;
	t.comment(`cached image lookup: ${warmSeconds.toFixed(2)} s`);
	t.equal(warm.fromCache, true);
	t.equal(warm.key, cold.key);
	t.ok(warmSeconds <= 2, 'cached lookup within 2 s');
});

t.test('a corrupt cached image is noticed and rebuilt', async (t) => {
	const before = await ensureImage({cache, progress});
	fs.truncateSync(before.initrd, 1000);
	messages.length = 0;
	const after = await ensureImage({cache, progress});
	t.equal(after.fromCache, false);
	t.equal(after.key, before.key);
	t.ok(
		messages.some((m) => /cached image [0-9a-f]{16} is corrupt \(initrd\.img checksum mismatch\); rebuilding it/.test(m)),
		'says so once',
	);
	t.equal(fs.statSync(after.initrd).size, after.manifest.files['initrd.img']?.size);
});

t.test('a failing build leaves no half-written image', async (t) => {
	const spec = JSON.parse(fs.readFileSync(path.join(packageRoot, 'images', 'contents.json'), 'utf8')) as {kernel: {modules: string[]}};
	spec.kernel.modules.push('pvrun_no_such_module');
	const specFile = path.join(cache, 'bad-contents.json');
	fs.writeFileSync(specFile, JSON.stringify(spec));
	const before = fs.readdirSync(imagesDir(cache)).sort();
	await t.rejects(ensureImage({cache, progress, specFile}), {name: 'ImageError', message: /has no module named pvrun_no_such_module/});
	t.same(fs.readdirSync(imagesDir(cache)).sort(), before, 'images/ unchanged: no build directory, no new image');
});

t.test("a package's mapped path may be a link: the file it leads to, inside the package", async (t) => {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-deb-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	fs.mkdirSync(path.join(root, 'lib', 'x86_64-linux-gnu'), {recursive: true});
	fs.mkdirSync(path.join(root, 'lib64'));
	fs.writeFileSync(path.join(root, 'lib', 'x86_64-linux-gnu', 'libz.so.1.2.13'), 'z');
	fs.symlinkSync('libz.so.1.2.13', path.join(root, 'lib', 'x86_64-linux-gnu', 'libz.so.1'));
	fs.writeFileSync(path.join(root, 'lib', 'x86_64-linux-gnu', 'ld.so'), 'ld');
	fs.symlinkSync('/lib/x86_64-linux-gnu/ld.so', path.join(root, 'lib64', 'ld.so'));
	fs.symlinkSync('/etc/passwd', path.join(root, 'lib64', 'escape'));
	fs.symlinkSync('../../etc/shadow', path.join(root, 'lib64', 'up'));
	fs.symlinkSync('loop', path.join(root, 'lib64', 'loop'));
	t.equal(resolveInside(root, 'lib/x86_64-linux-gnu/libz.so.1'), path.join(root, 'lib', 'x86_64-linux-gnu', 'libz.so.1.2.13'), 'a relative link');
	t.equal(resolveInside(root, 'lib64/ld.so'), path.join(root, 'lib', 'x86_64-linux-gnu', 'ld.so'), 'an absolute one, from the package root');
	t.throws(() => resolveInside(root, 'lib64/escape'), {message: /the package has no lib64\/escape/}, 'an absolute link stays in the package');
	t.throws(() => resolveInside(root, 'lib64/up'), {message: /leads out of it/});
	t.throws(() => resolveInside(root, 'lib64/loop'), {message: /loop of links/});
	t.throws(() => resolveInside(root, 'nope'), {message: /the package has no nope/});
});

t.test('a whole package is staged at its own paths: links stay links, documentation is left out', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-whole-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const pkg = path.join(dir, 'pkg');
	const put = (rel: string, body: string) => {
		fs.mkdirSync(path.dirname(path.join(pkg, rel)), {recursive: true});
		fs.writeFileSync(path.join(pkg, rel), body);
	};
	put('DEBIAN/control', 'Package: pvrun-test\nVersion: 1\nArchitecture: all\nMaintainer: pvrun <pvrun@example.org>\nDescription: test\n');
	put('usr/bin/tool', '#!/bin/sh\n');
	fs.chmodSync(path.join(pkg, 'usr/bin/tool'), 0o755);
	put('usr/lib/x86_64-linux-gnu/libx.so.1.0', 'x');
	fs.symlinkSync('libx.so.1.0', path.join(pkg, 'usr/lib/x86_64-linux-gnu/libx.so.1'));
	fs.mkdirSync(path.join(pkg, 'lib64'));
	fs.symlinkSync('/usr/lib/x86_64-linux-gnu/libx.so.1.0', path.join(pkg, 'lib64/ld.so'));
	put('usr/share/doc/pvrun-test/copyright', 'c');
	put('usr/share/man/man1/tool.1.gz', 'm');
	put('usr/share/locale/de/LC_MESSAGES/tool.mo', 'l');
	put('usr/lib/x86_64-linux-gnu/gconv/UTF-7.so', 'g');
	put('usr/share/tool/data', 'kept: not documentation');
	execFileSync('dpkg-deb', ['--build', '--root-owner-group', pkg, path.join(dir, 'test.deb')], {stdio: 'ignore'});

	const rootfs = path.join(dir, 'root');
	fs.mkdirSync(rootfs);
	await stageWhole(path.join(dir, 'test.deb'), rootfs);
	t.equal(fs.statSync(path.join(rootfs, 'usr/bin/tool')).mode & 0o777, 0o755, 'a file, its mode kept');
	t.equal(fs.readlinkSync(path.join(rootfs, 'usr/lib/x86_64-linux-gnu/libx.so.1')), 'libx.so.1.0', 'a relative link stays a link');
	t.equal(fs.readlinkSync(path.join(rootfs, 'lib64/ld.so')), '/usr/lib/x86_64-linux-gnu/libx.so.1.0', 'an absolute one too, not followed on the host');
	t.equal(fs.readFileSync(path.join(rootfs, 'usr/share/tool/data'), 'utf8'), 'kept: not documentation');
	for (const gone of ['usr/share/doc', 'usr/share/man', 'usr/share/locale', 'usr/lib/x86_64-linux-gnu/gconv'])
		t.notOk(fs.existsSync(path.join(rootfs, gone)), `no ${gone}`);
	t.notOk(fs.existsSync(path.join(rootfs, 'DEBIAN')), 'no control files');
	await t.rejects(stageWhole(path.join(dir, 'none.deb'), rootfs), {name: 'ImageError', message: /cannot unpack none\.deb/});
});

t.test('the download pool runs at most its size at once and reports the first failure', async (t) => {
	let running = 0;
	let most = 0;
	const done: number[] = [];
	await inPool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
		running++;
		most = Math.max(most, running);
		await new Promise((resolve) => setTimeout(resolve, 10 * (n % 3)));
		running--;
		done.push(n);
	});
	t.equal(most, 3);
	t.same([...done].sort(), [1, 2, 3, 4, 5, 6, 7]);
	const started: number[] = [];
	await t.rejects(
		inPool([1, 2, 3, 4, 5], 2, async (n) => {
			started.push(n);
			if (n === 2) throw new Error('boom 2');
			await new Promise((resolve) => setTimeout(resolve, 20));
		}),
		{message: 'boom 2'},
	);
	t.ok(started.length < 5, 'no new item starts after a failure');
});
