// Debian packages for the guest image: resolve names to candidate versions
// with apt-cache, download them with apt-get download, verify their SHA256
// against apt's metadata, and keep them in a content-addressed cache.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import {firstLine, ImageError} from '../util/errors.js';

export interface ResolvedPackage {
	name: string;
	version: string;
	sha256: string;
	size: number;
	depends: string[];
}

/** Parse `apt-cache show` output into one record per stanza. */
export function parseAptStanzas(text: string): ResolvedPackage[] {
	const records: ResolvedPackage[] = [];
	for (const stanza of text.split(/\n\s*\n/)) {
		const fields = new Map<string, string>();
		let last = '';
		for (const line of stanza.split('\n')) {
			if (/^\s/.test(line) && last) fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
			else {
				const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
				if (m?.[1] !== undefined) {
					last = m[1];
					fields.set(last, m[2] ?? '');
				}
			}
		}
		const name = fields.get('Package');
		const version = fields.get('Version');
		const sha256 = fields.get('SHA256');
		const size = Number(fields.get('Size'));
		if (!name || !version || !sha256 || !/^[0-9a-f]{64}$/.test(sha256) || !Number.isFinite(size)) continue;
		const depends = (fields.get('Depends') ?? '')
			.split(',')
			.map((d) => d.trim().split(/[\s(|]/, 1)[0] ?? '')
			.filter(Boolean);
		records.push({name, version, sha256, size, depends});
	}
	return records;
}

/** Resolve package names to their candidate versions (one apt-cache call). */
export async function resolvePackages(names: string[]): Promise<ResolvedPackage[]> {
	const result = await execa('apt-cache', ['show', '--no-all-versions', ...names], {reject: false});
	const records = parseAptStanzas(result.stdout);
	return names.map((name) => {
		const found = records.find((r) => r.name === name);
		if (!found) {
			const why = result.exitCode === 0 ? 'no candidate version' : firstLine(result.stderr);
			throw new ImageError(`Debian package ${name} not found (${why}): run make setup (it runs apt-get update)`);
		}
		return found;
	});
}

/** A fingerprint of apt's state (package lists, sources, preferences): candidates change only with it. */
export function aptStateStamp(): string {
	const hash = crypto.createHash('sha256');
	const dirs = ['/var/lib/apt/lists', '/etc/apt/sources.list.d', '/etc/apt/preferences.d'];
	const files = ['/etc/apt/sources.list', '/etc/apt/preferences', '/var/lib/dpkg/status'];
	for (const dir of dirs) {
		let names: string[] = [];
		try {
			names = fs.readdirSync(dir).sort();
		} catch {
			// absent directories are part of the state too
		}
		files.push(...names.map((n) => path.join(dir, n)));
	}
	for (const file of files) {
		try {
			const st = fs.statSync(file);
			if (st.isFile()) hash.update(`${file}\0${st.size}\0${st.mtimeMs}\n`);
		} catch {
			hash.update(`${file}\0absent\n`);
		}
	}
	return hash.digest('hex');
}

/** The arguments of the apt-cache call whose output dependencyClosure reads: Depends and Pre-Depends only. */
export const aptDependsArgs = ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances'];

/**
 * The packages `root` needs, by name, from `apt-cache depends --recurse` output (aptDependsArgs),
 * `root` excluded, in the order they are first reached. Of alternatives (`|Depends: a` then
 * `Depends: b`) the first real package is taken; a virtual package (`<name>`) stands for the
 * first package listed under it as providing it; the virtual names themselves are left out.
 */
export function dependencyClosure(text: string, root: string): string[] {
	type Alternative = {name: string; virtual: boolean; providers: string[]};
	const graph = new Map<string, Alternative[][]>();
	let groups: Alternative[][] | undefined;
	let open = false; // the last group ended in "|": the next dependency line joins it
	for (const line of text.split('\n')) {
		const head = /^(\S+)\s*$/.exec(line);
		if (head?.[1] !== undefined) {
			groups = [];
			open = false;
			if (!head[1].startsWith('<')) graph.set(head[1], groups);
			continue;
		}
		const dep = /^ {1,2}(\|?)(?:Pre)?Depends: (<)?([^\s>]+)>?\s*$/.exec(line);
		if (dep?.[3] !== undefined && groups) {
			const alternative = {name: dep[3], virtual: dep[2] === '<', providers: []};
			const last = groups[groups.length - 1];
			if (open && last) last.push(alternative);
			else groups.push([alternative]);
			open = dep[1] === '|';
			continue;
		}
		const provider = /^ {4}(\S+)\s*$/.exec(line);
		const alternatives = groups?.[groups.length - 1];
		const last = alternatives?.[alternatives.length - 1];
		if (provider?.[1] !== undefined && last?.virtual) last.providers.push(provider[1]);
	}
	const order: string[] = [];
	const seen = new Set([root]);
	const queue = [root];
	for (let current = queue.shift(); current !== undefined; current = queue.shift()) {
		for (const group of graph.get(current) ?? []) {
			const real = group.find((a) => !a.virtual)?.name ?? group.flatMap((a) => a.providers)[0];
			if (real === undefined || seen.has(real)) continue;
			seen.add(real);
			order.push(real);
			queue.push(real);
		}
	}
	return order;
}

/** The packages `root` depends on, directly or not (Depends and Pre-Depends), at their candidate versions. */
export async function resolveClosure(root: string): Promise<ResolvedPackage[]> {
	const result = await execa('apt-cache', [...aptDependsArgs, root], {reject: false});
	if (result.exitCode !== 0 || !/\S/.test(result.stdout))
		throw new ImageError(`cannot resolve the dependencies of ${root} (${firstLine(result.stderr) || `exit ${result.exitCode}`}): run make setup`);
	const names = dependencyClosure(result.stdout, root);
	return names.length ? resolvePackages(names) : [];
}

/**
 * resolve(names) through a small on-disk memo keyed by the apt state, because
 * apt-cache takes ~0.6 s a call where apt keeps no binary cache (Debian's
 * container images disable it), which would make a cached image slow to find.
 */
export async function resolveMemoized(memoFile: string, key: string, resolve: () => Promise<ResolvedPackage[]>): Promise<ResolvedPackage[]> {
	const stamp = aptStateStamp();
	let memo: {stamp?: string; entries?: Record<string, ResolvedPackage[]>} = {};
	try {
		memo = JSON.parse(fs.readFileSync(memoFile, 'utf8')) as typeof memo;
	} catch {
		// no memo yet, or unreadable: resolve afresh
	}
	const hit = memo.stamp === stamp ? memo.entries?.[key] : undefined;
	if (hit && hit.every((r) => typeof r.name === 'string' && /^[0-9a-f]{64}$/.test(r.sha256))) return hit;
	const resolved = await resolve();
	const entries = memo.stamp === stamp ? {...memo.entries, [key]: resolved} : {[key]: resolved};
	fs.mkdirSync(path.dirname(memoFile), {recursive: true});
	const tmp = `${memoFile}.${process.pid}.tmp`;
	fs.writeFileSync(tmp, JSON.stringify({stamp, entries}));
	fs.renameSync(tmp, memoFile);
	return resolved;
}

/**
 * Resolve the kernel metapackage (e.g. linux-image-cloud-amd64) to the
 * versioned image package it depends on (linux-image-6.1.0-N-cloud-amd64).
 */
export async function resolveKernelPackage(meta: string): Promise<ResolvedPackage> {
	const [record] = await resolvePackages([meta]);
	if (!record) throw new ImageError(`Debian package ${meta} not found: run make setup`);
	if (/^linux-image-\d/.test(record.name)) return record;
	const target = record.depends.find((d) => /^linux-image-\d/.test(d));
	if (!target) throw new ImageError(`${meta} does not depend on a versioned linux-image package`);
	const [image] = await resolvePackages([target]);
	if (!image) throw new ImageError(`Debian package ${target} not found: run make setup`);
	return image;
}

/** SHA256 of a file, hex. */
export async function sha256File(file: string): Promise<string> {
	const hash = crypto.createHash('sha256');
	for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
	return hash.digest('hex');
}

/**
 * The path of a verified copy of `pkg` in `debDir`, downloading it if needed.
 * Files are named by their SHA256; a cached file that no longer matches is
 * discarded and fetched again; a download that does not match is an error.
 */
export async function fetchPackage(pkg: ResolvedPackage, debDir: string): Promise<{file: string; downloaded: boolean}> {
	const got = (await fetchPackages([pkg], debDir)).get(pkg.name);
	if (!got) throw new ImageError(`download of ${pkg.name} ${pkg.version} failed`);
	return got;
}

/**
 * fetchPackage for many packages at once: the missing ones are downloaded by one apt-get call,
 * which starts apt once (about a second where apt keeps no binary cache) and fetches them over
 * one connection, instead of one call each. Keyed by package name.
 */
export async function fetchPackages(pkgs: readonly ResolvedPackage[], debDir: string): Promise<Map<string, {file: string; downloaded: boolean}>> {
	fs.mkdirSync(debDir, {recursive: true});
	const out = new Map<string, {file: string; downloaded: boolean}>();
	const missing: ResolvedPackage[] = [];
	for (const pkg of pkgs) {
		const file = path.join(debDir, `${pkg.sha256}.deb`);
		if (fs.existsSync(file)) {
			if ((await sha256File(file)) === pkg.sha256) {
				out.set(pkg.name, {file, downloaded: false});
				continue;
			}
			fs.rmSync(file, {force: true});
		}
		if (!missing.some((m) => m.name === pkg.name)) missing.push(pkg);
	}
	if (!missing.length) return out;
	const tmp = fs.mkdtempSync(path.join(debDir, '.download-'));
	try {
		const result = await execa('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...missing.map((p) => `${p.name}=${p.version}`)], {
			cwd: tmp,
			reject: false,
		});
		const what = missing.map((p) => `${p.name} ${p.version}`).join(', ');
		if (result.exitCode !== 0) {
			const why = firstLine(result.stderr.split('\n').find((l) => l.startsWith('E:')) ?? result.stderr) || `exit ${result.exitCode}`;
			throw new ImageError(`download of ${what} failed: ${why}`);
		}
		const debs = fs.readdirSync(tmp).filter((n) => n.endsWith('.deb'));
		for (const pkg of missing) {
			// apt-get names a download <name>_<version, ':' as %3a>_<arch>.deb.
			const name = debs.find((n) => n.startsWith(`${pkg.name}_`));
			if (name === undefined) throw new ImageError(`download of ${pkg.name} ${pkg.version} failed: apt-get download left no ${pkg.name}_*.deb`);
			const got = path.join(tmp, name);
			const sum = await sha256File(got);
			if (sum !== pkg.sha256)
				throw new ImageError(`download of ${pkg.name} ${pkg.version} is corrupt (SHA256 ${sum.slice(0, 12)}…, apt expects ${pkg.sha256.slice(0, 12)}…)`);
			const file = path.join(debDir, `${pkg.sha256}.deb`);
			fs.renameSync(got, file);
			out.set(pkg.name, {file, downloaded: true});
		}
		return out;
	} finally {
		fs.rmSync(tmp, {recursive: true, force: true});
	}
}

/**
 * Extract selected members (tar patterns like ./boot/vmlinuz-*; none: all) of a .deb into `dir`,
 * less the trees `exclude` names (like ./usr/share/doc). Links stay links.
 */
export async function extractDeb(deb: string, dir: string, members: string[], exclude: string[] = []): Promise<void> {
	fs.mkdirSync(dir, {recursive: true});
	const script = 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "${@:3}"';
	const options = ['--anchored', ...exclude.map((e) => `--exclude=${e}`), '--wildcards', ...members];
	const result = await execa('bash', ['-o', 'pipefail', '-c', script, 'extract', deb, dir, ...options], {reject: false});
	if (result.exitCode !== 0) throw new ImageError(`cannot unpack ${path.basename(deb)}: ${firstLine(result.stderr) || `exit ${result.exitCode}`}`);
}
