// The image cache's pruning: which images go, which stay, and that a hit counts as a use.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {imagesDir, initrdName, kernelName, manifestName, openCachedImage, pruneAfterMs, pruneImages} from '../../src/image/cache.js';

const day = 24 * 3600 * 1000;

/** A cache with images named by key, each last used `ageDays` ago (null: no manifest). */
function cacheWith(t: Pick<Test, 'teardown'>, images: Record<string, number | null>, now: number): string {
	const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-prune-'));
	t.teardown(() => fs.rmSync(cache, {recursive: true, force: true}));
	for (const [key, ageDays] of Object.entries(images)) {
		const dir = path.join(imagesDir(cache), key);
		fs.mkdirSync(dir, {recursive: true});
		const files: Record<string, {sha256: string; size: number}> = {};
		for (const name of [kernelName, initrdName]) {
			const data = Buffer.from(`${key} ${name}`);
			fs.writeFileSync(path.join(dir, name), data);
			files[name] = {sha256: crypto.createHash('sha256').update(data).digest('hex'), size: data.length};
		}
		const when = new Date(now - (ageDays ?? 30) * day);
		if (ageDays !== null) {
			fs.writeFileSync(path.join(dir, manifestName), JSON.stringify({format: 1, key, created: when.toISOString(), kernelRelease: 'x', files, inputs: {}}));
			fs.utimesSync(path.join(dir, manifestName), when, when);
		}
		fs.utimesSync(dir, when, when);
	}
	return cache;
}

const left = (cache: string) => fs.readdirSync(imagesDir(cache)).sort();

t.test('old unused images go; the current one and the newest other stay', async (t) => {
	const now = Date.now();
	const cache = cacheWith(t, {cur: 40, newer: 20, old: 30, older: 60, bare: null}, now);
	const removed = pruneImages(cache, 'cur', pruneAfterMs, 2, now);
	t.same(removed.sort(), ['bare', 'old', 'older'], 'the unused ones past 14 days, the one without a manifest by its directory time');
	t.same(left(cache), ['cur', 'newer']);
	t.same(pruneImages(cache, 'cur', pruneAfterMs, 2, now), [], 'idempotent');
});

t.test('images used within 14 days stay, however many', async (t) => {
	const now = Date.now();
	const cache = cacheWith(t, {cur: 0, a: 3, b: 5, c: 13, d: 15}, now);
	t.same(pruneImages(cache, 'cur', pruneAfterMs, 2, now), ['d']);
	t.same(left(cache), ['a', 'b', 'c', 'cur']);
});

t.test('keepNewest counts the current image', async (t) => {
	const now = Date.now();
	const cache = cacheWith(t, {cur: 100, a: 50, b: 60}, now);
	t.same(pruneImages(cache, 'cur', pruneAfterMs, 1, now).sort(), ['a', 'b']);
	t.same(left(cache), ['cur']);
});

t.test('build leftovers and a missing images directory are left alone', async (t) => {
	const now = Date.now();
	const cache = cacheWith(t, {cur: 1, old: 90}, now);
	fs.mkdirSync(path.join(imagesDir(cache), '.build-0123abcd-1-x'));
	t.same(pruneImages(cache, 'cur', pruneAfterMs, 1, now), ['old']);
	t.same(left(cache), ['.build-0123abcd-1-x', 'cur']);
	t.same(pruneImages(path.join(cache, 'nowhere'), 'cur'), []);
});

t.test('a cache hit is a use: it moves the image out of the pruning', async (t) => {
	const now = Date.now();
	const cache = cacheWith(t, {cur: 0, a: 20, b: 30}, now);
	const {image} = await openCachedImage(cache, 'b');
	t.ok(image, 'b verifies');
	t.same(pruneImages(cache, 'cur', pruneAfterMs, 1, Date.now()), ['a'], 'b was used just now');
	t.same(left(cache), ['b', 'cur']);
});
