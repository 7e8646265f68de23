// Building the default guest image: Debian packages (apt-get download) +
// repository files → a kernel and an uncompressed newc initramfs, cached by
// the hash of all inputs. Nothing half-built ever appears in the cache.
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import {firstLine, ImageError} from '../util/errors.js';
import {cacheRoot, packageRoot} from '../util/paths.js';
import {silentProgress, type Progress} from '../util/progress.js';
import {extractDeb, fetchPackages, resolveClosure, resolveKernelPackage, resolveMemoized, resolvePackages, sha256File, type ResolvedPackage} from './apt.js';
import {imageKey, initrdName, kernelName, makeBuildDir, openCachedImage, pruneImages, publishImage, type CachedImage} from './cache.js';
import {moduleClosure, parseModulesDep, trimmedModulesDep} from './modules.js';
import {expandFile, flavourFile, loadImageSpec, wholeExcludes, type ImageSpec} from './spec.js';

/** Bump when the way images are assembled changes, so old cache entries are not reused. */
export const builderVersion = 1;

export interface EnsureImageOptions {
	force?: boolean;
	progress?: Progress;
	cache?: string;
	/** The image description; defaults to the flavour's (images/contents.json for the default image). */
	specFile?: string;
	/** The image flavour (`default`, or a name from images/flavours/); ignored when specFile is given. */
	flavour?: string;
	/** Where `files[].from` paths are relative to; defaults to the package root. */
	root?: string;
}

export interface ImageResult extends CachedImage {
	fromCache: boolean;
}

interface Inputs {
	spec: ImageSpec;
	kernel: ResolvedPackage;
	packages: ResolvedPackage[];
	/** For each of spec.packages, the dependency closure it asked for (`depends`), staged whole; else empty. */
	closures: ResolvedPackage[][];
	files: Array<{source: string; dest: string; mode: number; sha256: string}>;
}

/** The image for the current inputs: from the cache if it is there and intact, else built. */
export async function ensureImage(options: EnsureImageOptions = {}): Promise<ImageResult> {
	const progress = options.progress ?? silentProgress;
	const cache = options.cache ?? cacheRoot();
	const root = options.root ?? packageRoot;
	const spec = loadImageSpec(options.specFile ?? flavourFile(root, options.flavour));

	const inputs = await gatherInputs(spec, root, path.join(cache, 'apt-resolved.json'));
	const key = imageKey(describeInputs(inputs));
	if (!options.force) {
		const {image, corrupt} = await openCachedImage(cache, key);
		if (image) return {...image, fromCache: true};
		if (corrupt) progress.info(`cached image ${key} is corrupt (${corrupt}); rebuilding it`);
	}

	const buildDir = makeBuildDir(cache, key);
	try {
		const release = await assemble(inputs, cache, buildDir, progress);
		const image = await publishImage(cache, buildDir, key, release, describeInputs(inputs));
		const pruned = pruneImages(cache, key);
		if (pruned.length) progress.info(`removed ${pruned.length} image(s) unused for 14 days: ${pruned.join(', ')}`);
		return {...image, fromCache: false};
	} catch (error) {
		fs.rmSync(buildDir, {recursive: true, force: true});
		throw error;
	}
}

/** Resolve packages and hash repository files: everything the key depends on. */
async function gatherInputs(spec: ImageSpec, root: string, memo: string): Promise<Inputs> {
	const names = spec.packages.map((p) => p.name);
	const resolved = await resolveMemoized(memo, [spec.kernel.package, ...names].join(' '), async () => [
		await resolveKernelPackage(spec.kernel.package),
		...(names.length ? await resolvePackages(names) : []),
	]);
	const [kernel, ...packages] = resolved;
	if (!kernel || packages.length !== names.length) throw new ImageError('package resolution returned an unexpected result');
	const closures: ResolvedPackage[][] = [];
	for (const entry of spec.packages) {
		if (!entry.depends) {
			closures.push([]);
			continue;
		}
		const closure = await resolveMemoized(memo, `closure ${entry.name}`, () => resolveClosure(entry.name));
		const absent = (entry.without ?? []).filter((n) => !closure.some((p) => p.name === n));
		if (absent.length) throw new ImageError(`package ${entry.name}: "without" names ${absent.join(', ')}, which it does not depend on`);
		closures.push(closure.filter((p) => !entry.without?.includes(p.name)));
	}
	const files: Inputs['files'] = [];
	for (const entry of spec.files) {
		for (const {source, dest} of expandFile(entry, root)) {
			if (!fs.existsSync(source)) throw new ImageError(`${path.relative(root, source)} is missing: run make build`);
			files.push({source, dest, mode: entry.mode, sha256: await sha256File(source)});
		}
	}
	return {spec, kernel, packages, closures, files};
}

/** The canonical, path-independent description of the inputs that the key hashes. */
function describeInputs(inputs: Inputs): unknown {
	const pkg = (p: ResolvedPackage) => ({name: p.name, version: p.version, sha256: p.sha256});
	return {
		builder: builderVersion,
		kernel: pkg(inputs.kernel),
		modules: inputs.spec.kernel.modules,
		packages: inputs.packages.map((p, i) => {
			const files = inputs.spec.packages[i]?.files;
			const closure = inputs.closures[i] ?? [];
			return {...pkg(p), files, ...(files === 'all' ? {exclude: wholeExcludes} : {}), ...(closure.length ? {depends: closure.map(pkg)} : {})};
		}),
		files: inputs.files.map((f) => ({dest: f.dest, mode: f.mode, sha256: f.sha256})),
	};
}

/** Download, unpack and stage everything, then write vmlinuz and initrd.img into buildDir. */
async function assemble(inputs: Inputs, cache: string, buildDir: string, progress: Progress): Promise<string> {
	const debDir = path.join(cache, 'debs');
	const debs = new Map<string, string>();
	const wanted = new Map<string, ResolvedPackage>();
	for (const pkg of [inputs.kernel, ...inputs.packages, ...inputs.closures.flat()]) if (!wanted.has(pkg.name)) wanted.set(pkg.name, pkg);
	const all = [...wanted.values()];
	const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
	const step = progress.step(`packages (${all.length}, ${megabytes(all.reduce((sum, p) => sum + p.size, 0))})`);
	try {
		// One apt-get call for all the missing ones: apt's start costs about a second each.
		const fetched = await fetchPackages(all, debDir);
		let downloaded = 0;
		for (const pkg of all) {
			const got = fetched.get(pkg.name);
			if (!got) throw new ImageError(`download of ${pkg.name} ${pkg.version} failed`);
			debs.set(pkg.name, got.file);
			if (got.downloaded) downloaded += pkg.size;
			progress.info(`package ${pkg.name} ${pkg.version}: ${got.downloaded ? `downloaded ${megabytes(pkg.size)}` : 'cached'}`);
		}
		step.done(downloaded ? `downloaded ${megabytes(downloaded)}` : 'cached');
	} catch (error) {
		step.fail();
		throw error;
	}

	const assembling = progress.step('assembling initramfs');
	try {
		const rootfs = path.join(buildDir, 'root');
		fs.mkdirSync(rootfs);
		// Whole packages first, each once, two tars at a time (unpacking is xz-bound: one CPU each),
		// the largest first; then the mapped files, which win where both have a path.
		const whole = new Map<string, ResolvedPackage>();
		for (const [i, pkg] of inputs.spec.packages.entries()) {
			const own = pkg.files === 'all' ? [inputs.packages[i]] : [];
			for (const p of [...own, ...(inputs.closures[i] ?? [])]) if (p && !whole.has(p.name)) whole.set(p.name, p);
		}
		// The kernel package (all of it decompressed, ~3 s) unpacks meanwhile.
		const kernelTree = unpackKernel(debs.get(inputs.kernel.name) ?? '', buildDir);
		kernelTree.catch(() => undefined); // awaited below; a failure there is the one reported
		const bySize = [...whole.values()].sort((a, b) => b.size - a.size);
		if (bySize.length) assembling.update(`unpacking ${bySize.length} packages`);
		try {
			await inPool(bySize, unpackPool, (p) => stageWhole(debs.get(p.name) ?? '', rootfs));
		} catch (error) {
			await kernelTree.catch(() => undefined); // no tar left writing into a build directory about to go
			throw error;
		}
		for (const [i, pkg] of inputs.spec.packages.entries())
			if (pkg.files !== 'all') await stagePackage(debs.get(pkg.name) ?? '', pkg.files, path.join(buildDir, `pkg-${i}`), rootfs);
		const busybox = path.join(rootfs, 'bin', 'busybox');
		if (!fs.existsSync(busybox)) throw new ImageError('the image description must put busybox at /bin/busybox');
		assembling.update('kernel and modules');
		const release = await stageKernel(kernelTree, inputs.spec.kernel.modules, busybox, buildDir, rootfs);
		assembling.update('files');
		for (const f of inputs.files) copyInto(rootfs, f.source, f.dest, f.mode);
		await linkApplets(busybox, rootfs);
		writeBaseFiles(rootfs, inputs.spec.kernel.modules);
		assembling.update('cpio');
		await writeCpio(rootfs, path.join(buildDir, initrdName));
		fs.rmSync(rootfs, {recursive: true, force: true});
		assembling.done(megabytes(fs.statSync(path.join(buildDir, initrdName)).size));
		return release;
	} catch (error) {
		assembling.fail();
		throw error;
	}
}

/** How many whole packages are unpacked at once. */
const unpackPool = 2;

/** run(item) for every item, at most `size` at a time; the first failure is thrown once all started ones have ended. */
export async function inPool<T>(items: readonly T[], size: number, run: (item: T) => Promise<void>): Promise<void> {
	let next = 0;
	let failure: {error: unknown} | undefined;
	const worker = async (): Promise<void> => {
		while (!failure && next < items.length) {
			const item = items[next++] as T;
			try {
				await run(item);
			} catch (error) {
				failure ??= {error};
			}
		}
	};
	await Promise.all(Array.from({length: Math.min(size, items.length)}, worker));
	if (failure) throw failure.error;
}

/**
 * Copy the mapped files of one package into the root filesystem. A mapped path may be a
 * symbolic link inside the package (a library's soname, `libz.so.1` → `libz.so.1.2.13`): the
 * file it leads to is copied, so a description names libraries by the names that stay.
 */
async function stagePackage(deb: string, files: Record<string, string>, scratch: string, rootfs: string): Promise<void> {
	await extractDeb(deb, scratch, []);
	for (const [from, to] of Object.entries(files)) {
		const source = resolveInside(scratch, from);
		copyInto(rootfs, source, to, fs.statSync(source).mode & 0o7777);
	}
	fs.rmSync(scratch, {recursive: true, force: true});
}

/** A whole package into the root filesystem at its own paths, links kept, less wholeExcludes: one tar. */
export async function stageWhole(deb: string, rootfs: string): Promise<void> {
	await extractDeb(deb, rootfs, [], wholeExcludes);
}

/** The file `rel` leads to inside the unpacked tree `root`, following links (absolute ones from `root`) at most 8 deep. */
export function resolveInside(root: string, rel: string): string {
	let current = path.join(root, rel);
	for (let hops = 0; hops <= 8; hops++) {
		let stat: fs.Stats;
		try {
			stat = fs.lstatSync(current);
		} catch {
			throw new ImageError(`the package has no ${rel}`);
		}
		if (!stat.isSymbolicLink()) return current;
		const target = fs.readlinkSync(current);
		current = target.startsWith('/') ? path.join(root, target) : path.join(path.dirname(current), target);
		if (path.relative(root, current).startsWith('..')) throw new ImageError(`${rel} in the package leads out of it`);
	}
	throw new ImageError(`${rel} in the package is a loop of links`);
}

/** Unpack the kernel's vmlinuz and modules into buildDir/kernel: the tree's path. */
async function unpackKernel(deb: string, buildDir: string): Promise<string> {
	const tree = path.join(buildDir, 'kernel');
	await extractDeb(deb, tree, ['./boot/vmlinuz-*', './lib/modules/*']);
	return tree;
}

/** From the unpacked kernel, copy vmlinuz out, and stage the module closure with its modules.dep. */
async function stageKernel(unpacked: Promise<string>, wanted: string[], busybox: string, buildDir: string, rootfs: string): Promise<string> {
	const tree = await unpacked;
	const releases = fs.readdirSync(path.join(tree, 'lib', 'modules'));
	const release = releases[0];
	if (releases.length !== 1 || release === undefined) throw new ImageError(`kernel package holds ${releases.length} module trees, expected 1`);
	fs.copyFileSync(path.join(tree, 'boot', `vmlinuz-${release}`), path.join(buildDir, kernelName));

	const depmod = await execa(busybox, ['depmod', '-b', tree, release], {reject: false});
	if (depmod.exitCode !== 0) throw new ImageError(`depmod failed on kernel ${release}: ${firstLine(depmod.stderr)}`);
	const modDir = path.join(tree, 'lib', 'modules', release);
	const deps = parseModulesDep(fs.readFileSync(path.join(modDir, 'modules.dep'), 'utf8'));
	const {paths, missing} = moduleClosure(deps, wanted);
	if (missing.length) throw new ImageError(`kernel ${release} has no module named ${missing.join(', ')}`);
	const target = `/lib/modules/${release}`;
	for (const p of paths) copyInto(rootfs, path.join(modDir, p), `${target}/${p}`, 0o644);
	writeInto(rootfs, `${target}/modules.dep`, trimmedModulesDep(deps, paths), 0o644);
	fs.rmSync(tree, {recursive: true, force: true});
	return release;
}

/** Symlinks for every busybox applet that no staged file already provides. */
async function linkApplets(busybox: string, rootfs: string): Promise<void> {
	const {stdout} = await execa(busybox, ['--list-full']);
	for (const applet of stdout.split('\n').filter(Boolean)) {
		const dest = path.join(rootfs, applet);
		if (fs.existsSync(dest)) continue;
		fs.mkdirSync(path.dirname(dest), {recursive: true});
		fs.symlinkSync('/bin/busybox', dest);
	}
}

/** Mount points, the user database and the module list the init script reads. */
function writeBaseFiles(rootfs: string, modules: string[]): void {
	for (const dir of ['proc', 'sys', 'dev', 'tmp', 'run', 'root', 'var/log']) fs.mkdirSync(path.join(rootfs, dir), {recursive: true});
	writeInto(rootfs, '/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n', 0o644);
	writeInto(rootfs, '/etc/group', 'root:x:0:\n', 0o644);
	writeInto(rootfs, '/etc/pvrun/modules', `${modules.join('\n')}\n`, 0o644);
}

/** newc cpio of the tree, owned by root, in a stable order. */
export async function writeCpio(rootfs: string, out: string): Promise<void> {
	const result = await execa(
		'bash',
		[
			'-o',
			'pipefail',
			'-c',
			'cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet > "$2"',
			'cpio',
			rootfs,
			out,
		],
		{
			reject: false,
		},
	);
	if (result.exitCode !== 0) throw new ImageError(`cpio failed: ${firstLine(result.stderr) || `exit ${result.exitCode}`}`);
}

function copyInto(rootfs: string, source: string, dest: string, mode: number): void {
	const target = path.join(rootfs, dest);
	fs.mkdirSync(path.dirname(target), {recursive: true});
	fs.copyFileSync(source, target);
	fs.chmodSync(target, mode);
}

function writeInto(rootfs: string, dest: string, content: string, mode: number): void {
	const target = path.join(rootfs, dest);
	fs.mkdirSync(path.dirname(target), {recursive: true});
	fs.writeFileSync(target, content, {mode});
}
