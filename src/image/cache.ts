// The image cache: one directory per image under <cache>/images/<key>, where
// the key is a hash of every input. A directory appears only when complete
// (built elsewhere, then renamed), and its manifest lets us detect corruption.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {processAlive} from '../host/proc.js';
import {sha256File} from './apt.js';

export const manifestName = 'manifest.json';
export const kernelName = 'vmlinuz';
export const initrdName = 'initrd.img';

export interface ImageManifest {
	format: 1;
	key: string;
	created: string;
	kernelRelease: string;
	files: Record<string, {sha256: string; size: number}>;
	inputs: unknown;
}

export interface CachedImage {
	key: string;
	dir: string;
	kernel: string;
	initrd: string;
	manifest: ImageManifest;
}

/** The cache key of a canonical JSON description of all inputs. */
export function imageKey(inputs: unknown): string {
	return crypto.createHash('sha256').update(canonicalJson(inputs)).digest('hex').slice(0, 16);
}

/** JSON with object keys sorted, so equal inputs always hash the same. */
export function canonicalJson(value: unknown): string {
	if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
	if (value !== null && typeof value === 'object') {
		const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
		return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
	}
	return JSON.stringify(value);
}

export function imagesDir(cache: string): string {
	return path.join(cache, 'images');
}

/**
 * The cached image with this key, verified against its manifest; `corrupt`
 * says why a present image cannot be used.
 */
export async function openCachedImage(cache: string, key: string): Promise<{image?: CachedImage; corrupt?: string}> {
	const dir = path.join(imagesDir(cache), key);
	if (!fs.existsSync(dir)) return {};
	let manifest: ImageManifest;
	try {
		manifest = JSON.parse(fs.readFileSync(path.join(dir, manifestName), 'utf8')) as ImageManifest;
	} catch {
		return {corrupt: 'manifest missing or unreadable'};
	}
	if (manifest.format !== 1 || manifest.key !== key || typeof manifest.files !== 'object') return {corrupt: 'manifest does not match'};
	for (const name of [kernelName, initrdName]) {
		const want = manifest.files[name];
		const file = path.join(dir, name);
		if (!want || !fs.existsSync(file)) return {corrupt: `${name} missing`};
		if (fs.statSync(file).size !== want.size || (await sha256File(file)) !== want.sha256) return {corrupt: `${name} checksum mismatch`};
	}
	markUsed(dir);
	return {image: {key, dir, kernel: path.join(dir, kernelName), initrd: path.join(dir, initrdName), manifest}};
}

/** An image's last use is its manifest's mtime: stamped on every hit, for pruneImages. */
function markUsed(dir: string): void {
	try {
		const now = new Date();
		fs.utimesSync(path.join(dir, manifestName), now, now);
	} catch {
		// a cache we may read but not write: its owner prunes it
	}
}

/**
 * When an image was last used: its manifest's mtime, or its directory's if the
 * manifest is gone; Infinity (never pruned) if the directory went meanwhile
 * (another build's pruning), so that pruning cannot fail a build that succeeded.
 */
function lastUsed(dir: string): number {
	for (const file of [path.join(dir, manifestName), dir]) {
		try {
			return fs.statSync(file).mtimeMs;
		} catch {
			// the next one
		}
	}
	return Infinity;
}

export const pruneAfterMs = 14 * 24 * 3600 * 1000;

/**
 * Remove the images not used for `unusedMs` (and build leftovers of theirs),
 * never `keep` nor the `keepNewest` last used: a guest-agent change makes a new
 * 19 MB image, and without this the cache grew by one per change for ever. An
 * image in use by a running VM is safe: QEMU has read its kernel and initrd at
 * start, and a process that opened it less than `unusedMs` ago finds it still.
 * Returns the keys removed.
 */
export function pruneImages(cache: string, keep: string, unusedMs = pruneAfterMs, keepNewest = 2, now = Date.now()): string[] {
	const root = imagesDir(cache);
	if (!fs.existsSync(root)) return [];
	const images = fs
		.readdirSync(root)
		.filter((n) => !n.startsWith('.') && n !== keep)
		.map((key) => ({key, used: lastUsed(path.join(root, key))}))
		.sort((a, b) => b.used - a.used);
	const removed: string[] = [];
	for (const {key, used} of images.slice(Math.max(0, keepNewest - 1))) {
		if (now - used < unusedMs) continue;
		fs.rmSync(path.join(root, key), {recursive: true, force: true});
		removed.push(key);
	}
	return removed;
}

/** A fresh private directory to build an image in, inside the cache (same filesystem as the final place). */
export function makeBuildDir(cache: string, key: string): string {
	const root = imagesDir(cache);
	fs.mkdirSync(root, {recursive: true});
	removeAbandonedBuilds(root);
	const dir = fs.mkdtempSync(path.join(root, `.build-${key}-${process.pid}-`));
	fs.chmodSync(dir, 0o755); // QEMU may run as another user (libvirt's libvirt-qemu) and must read the image
	return dir;
}

/** Write the manifest last, then move the finished directory into place atomically. */
export async function publishImage(cache: string, buildDir: string, key: string, kernelRelease: string, inputs: unknown): Promise<CachedImage> {
	const files: ImageManifest['files'] = {};
	for (const name of [kernelName, initrdName]) {
		const file = path.join(buildDir, name);
		files[name] = {sha256: await sha256File(file), size: fs.statSync(file).size};
	}
	const manifest: ImageManifest = {format: 1, key, created: new Date().toISOString(), kernelRelease, files, inputs};
	fs.writeFileSync(path.join(buildDir, manifestName), `${JSON.stringify(manifest, null, 2)}\n`);
	const dir = path.join(imagesDir(cache), key);
	fs.rmSync(dir, {recursive: true, force: true});
	fs.renameSync(buildDir, dir);
	return {key, dir, kernel: path.join(dir, kernelName), initrd: path.join(dir, initrdName), manifest};
}

/** Every image in the cache, newest first (unverified; cheap). */
export function listCachedImages(cache: string): Array<{key: string; dir: string; manifest?: ImageManifest}> {
	const root = imagesDir(cache);
	if (!fs.existsSync(root)) return [];
	return fs
		.readdirSync(root)
		.filter((n) => !n.startsWith('.'))
		.map((key) => {
			const dir = path.join(root, key);
			try {
				return {key, dir, manifest: JSON.parse(fs.readFileSync(path.join(dir, manifestName), 'utf8')) as ImageManifest};
			} catch {
				return {key, dir};
			}
		})
		.sort((a, b) => (b.manifest?.created ?? '').localeCompare(a.manifest?.created ?? ''));
}

/** Remove build directories left by builds whose process is gone. */
function removeAbandonedBuilds(root: string): void {
	for (const name of fs.readdirSync(root)) {
		const m = /^\.build-[0-9a-f]+-(\d+)-/.exec(name);
		if (!m) continue;
		if (!processAlive(Number(m[1]))) fs.rmSync(path.join(root, name), {recursive: true, force: true});
	}
}
