// `pvrun image` (src/image/command.ts): `image list` over a fake cache (the
// manifests only: the list is cheap and verifies nothing, so no kernel or
// initrd is written), and the verbs it takes. `image path` and `image list` on
// the real cache: test/cli/main.test.ts; `image list` through the built CLI:
// test/cli/commands.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {runCommand} from '../../src/cli/commands.js';
import {imagesDir, manifestName} from '../../src/image/cache.js';
import {listImages} from '../../src/image/command.js';
import {UsageError} from '../../src/util/errors.js';
import {isolateProcess} from '../helpers/isolated-env.js';

/** An empty cache directory (not yet created, as on a machine that never built an image). */
function emptyCache(t: Pick<Test, 'teardown'>): string {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-image-list-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	return path.join(root, 'pvrun');
}

/** An image directory with `manifest` as its manifest.json (a string as is; undefined: none). */
function addImage(cache: string, key: string, manifest?: unknown): void {
	const dir = path.join(imagesDir(cache), key);
	fs.mkdirSync(dir, {recursive: true});
	if (manifest !== undefined) fs.writeFileSync(path.join(dir, manifestName), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
}

const manifest = (key: string, created: string, kernelRelease: string, sizes: Record<string, number>) => ({
	format: 1,
	key,
	created,
	kernelRelease,
	files: Object.fromEntries(Object.entries(sizes).map(([name, size]) => [name, {sha256: '0'.repeat(64), size}])),
	inputs: {},
});

t.test('an empty cache, or one with only a build in progress, has no images', async (t) => {
	const cache = emptyCache(t);
	t.equal(listImages(cache), `no images in ${cache}\n`, 'no cache directory at all');
	fs.mkdirSync(path.join(imagesDir(cache), '.build-0123456789abcdef-42-x'), {recursive: true});
	t.equal(listImages(cache), `no images in ${cache}\n`, 'a .build- directory is not an image');
});

t.test('one line per image, newest first: key, created, kernel, size of its files in MB', async (t) => {
	const cache = emptyCache(t);
	const older = 'aaaaaaaaaaaaaaaa';
	const newer = 'bbbbbbbbbbbbbbbb';
	addImage(cache, older, manifest(older, '2026-01-02T03:04:05.000Z', '6.1.0-28-cloud-amd64', {vmlinuz: 8_123_456, 'initrd.img': 11_250_000}));
	addImage(cache, newer, manifest(newer, '2026-03-04T05:06:07.000Z', '6.12.9-cloud-amd64', {vmlinuz: 1_000_000, 'initrd.img': 450_000, extra: 10_000}));
	t.equal(
		listImages(cache),
		[
			`${newer}  2026-03-04T05:06:07.000Z  kernel 6.12.9-cloud-amd64  1.5 MB`,
			`${older}  2026-01-02T03:04:05.000Z  kernel 6.1.0-28-cloud-amd64  19.4 MB`,
			'',
		].join('\n'),
	);
});

t.test('an image without a usable manifest is listed last, as corrupt', async (t) => {
	const cache = emptyCache(t);
	const good = 'cccccccccccccccc';
	addImage(cache, 'dddddddddddddddd');
	addImage(cache, 'eeeeeeeeeeeeeeee', '{"format": 1, "key": "eeee');
	addImage(cache, 'ffffffffffffffff', {format: 1, key: 'ffffffffffffffff'}); // parses, but has no files
	addImage(cache, good, manifest(good, '2026-02-01T00:00:00.000Z', '6.1.0-28-cloud-amd64', {vmlinuz: 100_000}));
	const [first, ...rest] = listImages(cache).split('\n');
	t.equal(first, `${good}  2026-02-01T00:00:00.000Z  kernel 6.1.0-28-cloud-amd64  0.1 MB`);
	t.strictSame(rest.sort(), [
		'',
		'dddddddddddddddd  (no manifest: corrupt, rebuilt on next use)',
		'eeeeeeeeeeeeeeee  (no manifest: corrupt, rebuilt on next use)',
		'ffffffffffffffff  (manifest does not match: corrupt, rebuilt on next use)',
	]);
});

t.test('the verbs are build, path and list; anything else is refused naming them', async (t) => {
	isolateProcess(t); // a verb wrongly accepted fails on the image at once instead of building one
	const refused = async (...argv: string[]) => {
		try {
			await runCommand(argv, '0.0.0');
		} catch (error) {
			return error instanceof UsageError && error.exitCode === 2 ? error.message : `not a usage error: ${String(error)}`;
		}
		return 'accepted';
	};
	t.equal(await refused('image', 'frobnicate'), 'Invalid values: Argument: action, Given: "frobnicate", Choices: "build", "path", "list" (see pvrun --help)');
	t.equal(await refused('image', 'list', 'extra'), 'Unknown argument: extra (see pvrun --help)');
	t.equal(await refused('image', 'path', '--frobnicate'), 'Unknown argument: frobnicate (see pvrun --help)');
});
