// The image builder against a private cache: cold build, cache hit, corrupt
// cache, and a failing build that must leave nothing half-written.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {ensureImage, resolveInside} from '../../src/image/build.js';
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
