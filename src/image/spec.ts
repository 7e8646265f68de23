// The image description (images/contents.json): which Debian packages, kernel
// modules and repository files go into the default guest, validated on load.
import fs from 'node:fs';
import path from 'node:path';
import {ImageError} from '../util/errors.js';

export interface PackageSpec {
	/** Debian package name, resolved to the candidate version by apt. */
	name: string;
	/**
	 * Paths inside the package (no leading slash) → absolute paths in the image; or `all`: the
	 * whole package at its own paths, links kept, less what a run never needs (wholeExcludes).
	 */
	files: Record<string, string> | 'all';
	/** Also stage every package of its dependency closure (Depends and Pre-Depends) whole. */
	depends?: true;
	/** Packages of that closure to leave out (each must be in it). */
	without?: string[];
}

/** What a whole package (`"files": "all"`) leaves out: documentation and other files no run reads. */
export const wholeExcludes = [
	'./usr/share/doc',
	'./usr/share/doc-base',
	'./usr/share/man',
	'./usr/share/info',
	'./usr/share/lintian',
	'./usr/share/locale',
	'./usr/share/bug',
	'./usr/share/bash-completion',
	'./usr/share/zsh',
	'./usr/share/menu',
	'./usr/share/gdb',
	'./usr/share/gcc',
	// iconv's character set modules (libc6, 8 MB): nothing in a guest converts character sets.
	'./usr/lib/x86_64-linux-gnu/gconv',
];

export interface FileSpec {
	/** Repository-relative source; a trailing `/*.suffix` selects files by suffix. */
	from: string;
	/** Absolute destination; ending in `/` means "into this directory". */
	to: string;
	/** Octal permission bits. */
	mode: number;
}

export interface ImageSpec {
	kernel: {package: string; modules: string[]};
	packages: PackageSpec[];
	files: FileSpec[];
}

const packageName = /^[a-z0-9][a-z0-9+.-]+$/;
const moduleName = /^[A-Za-z0-9_-]+$/;

/** Where the image descriptions are, under the package root: contents.json (the default image) and flavours/<name>.json. */
export const defaultFlavour = 'default';

/** The description file of an image flavour: `default` is images/contents.json, others images/flavours/<name>.json. */
export function flavourFile(root: string, flavour: string = defaultFlavour): string {
	if (flavour === defaultFlavour) return path.join(root, 'images', 'contents.json');
	if (!/^[a-z0-9][a-z0-9-]*$/.test(flavour)) throw new ImageError(`bad image flavour name "${flavour}"`);
	const file = path.join(root, 'images', 'flavours', `${flavour}.json`);
	if (!fs.existsSync(file)) throw new ImageError(`no image flavour "${flavour}" (the flavours: ${listFlavours(root).join(', ')})`);
	return file;
}

/** The flavours there are: default, then images/flavours/*.json by name. */
export function listFlavours(root: string): string[] {
	let names: string[] = [];
	try {
		names = fs.readdirSync(path.join(root, 'images', 'flavours')).filter((n) => n.endsWith('.json'));
	} catch {
		// no flavours beside the default
	}
	return [defaultFlavour, ...names.map((n) => n.slice(0, -'.json'.length)).sort()];
}

/**
 * Read and validate an image description; any defect is one clear error. A description with
 * `extends` (a file beside it) is that one's image plus its own modules, packages and files,
 * less the files whose destinations `remove` lists.
 */
export function loadImageSpec(file: string, seen: readonly string[] = []): ImageSpec {
	const raw = readJson(file);
	if (!isRecord(raw) || raw['extends'] === undefined) return parseImageSpec(raw, file);
	const base = raw['extends'];
	if (typeof base !== 'string' || base.startsWith('/')) throw new ImageError(`${file}: "extends" must name a description file beside it`);
	const baseFile = path.resolve(path.dirname(file), base);
	if (seen.includes(baseFile) || baseFile === path.resolve(file)) throw new ImageError(`${file}: "extends" goes round in a circle`);
	return extendImageSpec(loadImageSpec(baseFile, [...seen, path.resolve(file)]), raw, file);
}

/** `base` with the modules, packages and files of the flavour `raw` added and its `remove` destinations taken out. */
export function extendImageSpec(base: ImageSpec, raw: Record<string, unknown>, where = 'image flavour'): ImageSpec {
	const kernel = isRecord(raw['kernel']) ? raw['kernel'] : {};
	const own = parseImageSpec(
		{
			kernel: {package: kernel['package'] ?? base.kernel.package, modules: kernel['modules'] ?? []},
			packages: raw['packages'] ?? [],
			files: raw['files'] ?? [],
		},
		where,
	);
	const remove = raw['remove'] ?? [];
	if (!Array.isArray(remove) || !remove.every((r): r is string => typeof r === 'string'))
		throw new ImageError(`${where}: "remove" must be a list of image paths`);
	const kept = base.files.filter((f) => !remove.includes(f.to));
	const unknown = remove.filter((r) => !base.files.some((f) => f.to === r));
	if (unknown.length) throw new ImageError(`${where}: "remove" names ${unknown.join(', ')}, which the image it extends does not have`);
	return {
		kernel: {package: own.kernel.package, modules: [...base.kernel.modules, ...own.kernel.modules.filter((m) => !base.kernel.modules.includes(m))]},
		packages: [...base.packages, ...own.packages],
		files: [...kept, ...own.files],
	};
}

function readJson(file: string): unknown {
	try {
		return JSON.parse(fs.readFileSync(file, 'utf8'));
	} catch (error) {
		throw new ImageError(`cannot read image description ${file}: ${(error as Error).message}`, {cause: error});
	}
}

/** Validate an already-parsed image description. */
export function parseImageSpec(raw: unknown, where = 'image description'): ImageSpec {
	const fail = (what: string): never => {
		throw new ImageError(`${where}: ${what}`);
	};
	if (!isRecord(raw)) return fail('not a JSON object');
	const kernel = raw['kernel'];
	if (!isRecord(kernel) || typeof kernel['package'] !== 'string' || !packageName.test(kernel['package']))
		return fail('"kernel.package" must be a Debian package name');
	const modules = stringList(kernel['modules']) ?? fail('"kernel.modules" must be a list of strings');
	for (const m of modules) if (!moduleName.test(m)) fail(`bad module name "${m}"`);

	const packagesRaw = raw['packages'];
	if (!Array.isArray(packagesRaw)) return fail('"packages" must be a list');
	const packages = packagesRaw.map((p, i): PackageSpec => {
		if (!isRecord(p) || typeof p['name'] !== 'string' || !packageName.test(p['name'])) return fail(`packages[${i}].name must be a Debian package name`);
		const known = ['name', 'files', 'depends', 'without'];
		const stray = Object.keys(p).filter((k) => !known.includes(k) && !k.startsWith('$'));
		if (stray.length) return fail(`packages[${i}] has unknown field(s) ${stray.join(', ')} (known: ${known.join(', ')})`);
		const files = p['files'];
		const {depends, without} = p;
		if (depends !== undefined && depends !== true) return fail(`packages[${i}].depends must be true (or absent)`);
		if (depends && files !== 'all') return fail(`packages[${i}]: "depends": true needs "files": "all" (its dependencies are staged whole)`);
		const left = without === undefined ? undefined : stringList(without);
		if (without !== undefined && (!depends || !left || !left.every((n) => packageName.test(n))))
			return fail(`packages[${i}].without must be a list of package names, beside "depends": true`);
		const extra = {...(depends === true ? {depends: true as const} : {}), ...(left ? {without: left} : {})};
		if (files === 'all') return {name: p['name'], files, ...extra};
		if (!isRecord(files)) return fail(`packages[${i}].files must map package paths to image paths, or be "all"`);
		const mapped: Record<string, string> = {};
		for (const [from, to] of Object.entries(files)) {
			if (typeof to !== 'string' || !safeAbsolute(to) || from.startsWith('/') || from.includes('..'))
				return fail(`packages[${i}].files: bad mapping "${from}" -> ${JSON.stringify(to)}`);
			mapped[from] = to;
		}
		return {name: p['name'], files: mapped};
	});

	const filesRaw = raw['files'];
	if (!Array.isArray(filesRaw)) return fail('"files" must be a list');
	const files = filesRaw.map((f, i): FileSpec => {
		if (!isRecord(f)) return fail(`files[${i}] must be an object`);
		const {from, to, mode} = f;
		if (typeof from !== 'string' || from.startsWith('/') || from.split('/').includes('..'))
			return fail(`files[${i}].from must be a path inside the repository`);
		if (typeof to !== 'string' || !safeAbsolute(to)) return fail(`files[${i}].to must be an absolute path`);
		if (typeof mode !== 'string' || !/^0[0-7]{3}$/.test(mode)) return fail(`files[${i}].mode must be like "0755"`);
		return {from, to, mode: Number.parseInt(mode, 8)};
	});
	return {kernel: {package: kernel['package'], modules}, packages, files};
}

/** Expand a file entry into concrete (source, destination) pairs. */
export function expandFile(spec: FileSpec, root: string): Array<{source: string; dest: string}> {
	const glob = /^(.*)\/\*(\.[^/*]+)$/.exec(spec.from);
	if (!glob) {
		const dest = spec.to.endsWith('/') ? spec.to + path.basename(spec.from) : spec.to;
		return [{source: path.join(root, spec.from), dest}];
	}
	const [, dir = '', suffix = ''] = glob;
	if (!spec.to.endsWith('/')) throw new ImageError(`image file "${spec.from}": a pattern needs a directory destination ending in /`);
	let names: string[];
	try {
		names = fs.readdirSync(path.join(root, dir));
	} catch (error) {
		throw new ImageError(`image file "${spec.from}": ${dir}/ is missing: run make build`, {cause: error});
	}
	const matches = names.filter((n) => n.endsWith(suffix)).sort();
	if (matches.length === 0) throw new ImageError(`image file "${spec.from}" matches nothing: run make build`);
	return matches.map((n) => ({source: path.join(root, dir, n), dest: spec.to + n}));
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringList(value: unknown): string[] | undefined {
	return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
}

function safeAbsolute(p: string): boolean {
	return p.startsWith('/') && !p.split('/').includes('..') && p.length > 1;
}
