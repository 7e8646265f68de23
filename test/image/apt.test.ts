import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {fetchPackage, parseAptStanzas, resolvePackages} from '../../src/image/apt.js';

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
