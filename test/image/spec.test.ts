import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {expandFile, loadImageSpec, parseImageSpec} from '../../src/image/spec.js';
import {packageRoot} from '../../src/util/paths.js';

const valid = {
	kernel: {package: 'linux-image-cloud-amd64', modules: ['virtio_pci']},
	packages: [{name: 'busybox-static', files: {'bin/busybox': '/bin/busybox'}}],
	files: [{from: 'images/init', to: '/init', mode: '0755'}],
};

t.test('the committed image description is valid', async (t) => {
	const spec = loadImageSpec(path.join(packageRoot, 'images', 'contents.json'));
	t.ok(spec.kernel.modules.includes('virtio_console'));
	t.ok(spec.files.some((f) => f.to === '/init' && f.mode === 0o755));
});

t.test('defects are one clear error each', async (t) => {
	const bad: Array<[string, unknown, RegExp]> = [
		['not an object', [], /not a JSON object/],
		['bad kernel', {...valid, kernel: {package: 'Bad Name', modules: []}}, /kernel\.package/],
		['bad module', {...valid, kernel: {package: 'linux-image-cloud-amd64', modules: ['a;b']}}, /bad module name/],
		['relative dest', {...valid, files: [{from: 'x', to: 'init', mode: '0755'}]}, /absolute path/],
		['escaping source', {...valid, files: [{from: '../etc/shadow', to: '/x', mode: '0644'}]}, /inside the repository/],
		['bad mode', {...valid, files: [{from: 'x', to: '/x', mode: 'rwx'}]}, /mode/],
		['escaping package path', {...valid, packages: [{name: 'busybox-static', files: {'../../etc/passwd': '/x'}}]}, /bad mapping/],
	];
	for (const [name, raw, message] of bad) t.throws(() => parseImageSpec(raw), {name: 'ImageError', message}, name);
	t.same(parseImageSpec(valid).files[0]?.mode, 0o755);
});

t.test('a pattern expands to the matching files, sorted', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-spec-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	fs.mkdirSync(path.join(dir, 'bpf'));
	for (const n of ['b.bpf.o', 'a.bpf.o', 'c.bpf.c']) fs.writeFileSync(path.join(dir, 'bpf', n), n);
	const got = expandFile({from: 'bpf/*.bpf.o', to: '/usr/lib/pvrun/bpf/', mode: 0o644}, dir);
	t.same(
		got.map((g) => g.dest),
		['/usr/lib/pvrun/bpf/a.bpf.o', '/usr/lib/pvrun/bpf/b.bpf.o'],
	);
	t.throws(() => expandFile({from: 'bpf/*.none', to: '/x/', mode: 0o644}, dir), {name: 'ImageError'});
	t.throws(() => expandFile({from: 'nodir/*.o', to: '/x/', mode: 0o644}, dir), /run make build/);
});
