import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {dependencyClosure, fetchPackage, fetchPackages, parseAptStanzas, resolveClosure, resolvePackages} from '../../src/image/apt.js';

t.test('apt-cache stanzas parse, continuation lines and all', async (t) => {
	const text = `Package: linux-image-cloud-amd64
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
Description: Linux for x86-64 cloud
 more text: here
Size: 1504
SHA256: ${'a'.repeat(64)}

Package: broken
Version: 1
`;
	const got = parseAptStanzas(text);
	t.equal(got.length, 1, 'a stanza without SHA256 is dropped');
	t.same(got[0], {name: 'linux-image-cloud-amd64', version: '6.1.192-2', sha256: 'a'.repeat(64), size: 1504, depends: ['linux-image-6.1.0-56-cloud-amd64']});
});

t.test('a package apt does not know is one clear error', async (t) => {
	await t.rejects(resolvePackages(['pvrun-no-such-package']), {name: 'ImageError', message: /Debian package pvrun-no-such-package not found/});
});

t.test('a failed download is one clear error and leaves nothing behind', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-debs-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const bogus = {name: 'busybox-static', version: '0.0-pvrun-bogus', sha256: '0'.repeat(64), size: 1, depends: []};
	await t.rejects(fetchPackage(bogus, dir), {name: 'ImageError', message: /^download of busybox-static 0\.0-pvrun-bogus failed: /});
	t.same(fs.readdirSync(dir), [], 'no partial download left');
});

t.test("a download that does not match apt's checksum is rejected", async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-debs-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const [real] = await resolvePackages(['busybox-static']);
	t.ok(real);
	if (!real) return;
	await t.rejects(fetchPackage({...real, sha256: 'f'.repeat(64)}, dir), {message: /is corrupt/});
	t.same(fs.readdirSync(dir), []);
	const ok = await fetchPackage(real, dir);
	t.equal(ok.downloaded, true);
	t.equal(path.basename(ok.file), `${real.sha256}.deb`);
	fs.writeFileSync(ok.file, 'garbage');
	const again = await fetchPackage(real, dir);
	t.equal(again.downloaded, true, 'a corrupt cached package is fetched again');
});

// apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks
// --no-replaces --no-enhances adduser, on Debian 12 (cut short): alternatives, a virtual
// package with its providers, Pre-Depends.
const adduserDepends = `adduser
  Depends: passwd
passwd
  Depends: libc6
  Depends: libpam0g
  Depends: libpam-modules
libc6
  Depends: libgcc-s1
libpam0g
  Depends: libc6
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
libpam-modules
  PreDepends: libc6
 |PreDepends: debconf
  PreDepends: <debconf-2.0>
    cdebconf
    debconf
  PreDepends: libpam-modules-bin
<debconf-2.0>
libgcc-s1
  Depends: gcc-12-base
  Depends: libc6
debconf
cdebconf
  Depends: libc6
  Depends: libnewt0.52
libpam-modules-bin
  Depends: libc6
gcc-12-base
libnewt0.52
  Depends: libc6
`;

t.test('a dependency closure from apt-cache depends: first alternatives, no virtual names', async (t) => {
	t.same(dependencyClosure(adduserDepends, 'adduser'), [
		'passwd',
		'libc6',
		'libpam0g',
		'libpam-modules',
		'libgcc-s1',
		'debconf',
		'libpam-modules-bin',
		'gcc-12-base',
	]);
	t.same(dependencyClosure(adduserDepends, 'libc6'), ['libgcc-s1', 'gcc-12-base'], 'from any package, itself left out');
	const onlyVirtual =
		'mail-user\n  Depends: <mail-transport-agent>\n    exim4-daemon-light\n    postfix\n<mail-transport-agent>\nexim4-daemon-light\npostfix\n';
	t.same(dependencyClosure(onlyVirtual, 'mail-user'), ['exim4-daemon-light'], 'a virtual package alone: its first provider');
	t.same(dependencyClosure('gcc-12-base\n', 'gcc-12-base'), [], 'none');
});

t.test("a real package's closure, resolved by apt", async (t) => {
	const closure = await resolveClosure('dropbear-bin');
	const names = closure.map((p) => p.name);
	for (const n of ['libc6', 'libtomcrypt1', 'libgmp10', 'zlib1g']) t.ok(names.includes(n), n);
	t.notOk(names.includes('dropbear-bin'), 'not the package itself');
	t.ok(
		closure.every((p) => /^[0-9a-f]{64}$/.test(p.sha256) && p.version.length > 0),
		"each with its version and apt's SHA256",
	);
	await t.rejects(resolveClosure('pvrun-no-such-package'), {name: 'ImageError', message: /cannot resolve the dependencies of pvrun-no-such-package/});
});

t.test('packages are downloaded together, then found in the cache', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-debs-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const pkgs = await resolvePackages(['libffi8', 'libmd0']);
	const first = await fetchPackages(pkgs, dir);
	t.same(
		pkgs.map((p) => first.get(p.name)),
		pkgs.map((p) => ({file: path.join(dir, `${p.sha256}.deb`), downloaded: true})),
	);
	const again = await fetchPackages([...pkgs, ...pkgs], dir);
	t.same(
		[...again.values()].map((g) => g.downloaded),
		[false, false],
		'each once, from the cache',
	);
	t.same(fs.readdirSync(dir).sort(), pkgs.map((p) => `${p.sha256}.deb`).sort(), 'nothing else left');
	const [one] = pkgs;
	if (!one) return;
	await t.rejects(
		fetchPackages(
			[
				{...one, version: '0.0-pvrun-bogus', sha256: '0'.repeat(64)},
				{...one, name: 'libmd0', sha256: '1'.repeat(64)},
			],
			dir,
		),
		{
			name: 'ImageError',
			message: /^download of libffi8 0\.0-pvrun-bogus, libmd0 .* failed: /,
		},
	);
});
