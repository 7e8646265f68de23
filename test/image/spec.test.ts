import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {expandFile, flavourFile, listFlavours, loadImageSpec, parseImageSpec, wholeExcludes} from '../../src/image/spec.js';
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

t.test('a flavour extends a description: more modules, packages and files, some removed', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-flavour-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const base = {...valid, files: [...valid.files, {from: 'a', to: '/usr/sbin/a', mode: '0755'}]};
	fs.writeFileSync(path.join(dir, 'base.json'), JSON.stringify(base));
	const write = (name: string, body: unknown) => {
		fs.writeFileSync(path.join(dir, name), JSON.stringify(body));
		return path.join(dir, name);
	};
	const spec = loadImageSpec(
		write('f.json', {
			extends: 'base.json',
			kernel: {modules: ['virtio_net', 'virtio_pci']},
			packages: [{name: 'dropbear-bin', files: {'usr/sbin/dropbear': '/usr/sbin/dropbear'}}],
			files: [{from: 'k', to: '/root/.ssh/authorized_keys', mode: '0600'}],
			remove: ['/usr/sbin/a'],
		}),
	);
	t.same(spec.kernel, {package: 'linux-image-cloud-amd64', modules: ['virtio_pci', 'virtio_net']}, 'modules added once each');
	t.same(
		spec.packages.map((p) => p.name),
		['busybox-static', 'dropbear-bin'],
	);
	t.same(
		spec.files.map((f) => f.to),
		['/init', '/root/.ssh/authorized_keys'],
		'the removed file is gone, the new one there',
	);
	t.throws(() => loadImageSpec(write('g.json', {extends: 'base.json', remove: ['/nope']})), {
		message: /"remove" names \/nope, which the image it extends does not have/,
	});
	t.throws(() => loadImageSpec(write('h.json', {extends: 'h.json'})), {message: /circle/});
	t.throws(() => loadImageSpec(write('i.json', {extends: '/etc/x.json'})), {message: /"extends" must name a description file beside it/});
	t.throws(() => loadImageSpec(write('j.json', {extends: 'base.json', files: [{from: 'x', to: 'rel', mode: '0644'}]})), {message: /absolute path/});
});

t.test('flavours by name: default, the committed ssh one; unknown and bad names refused', async (t) => {
	t.equal(flavourFile(packageRoot), path.join(packageRoot, 'images', 'contents.json'));
	t.ok(listFlavours(packageRoot).includes('ssh'));
	const ssh = loadImageSpec(flavourFile(packageRoot, 'ssh'));
	t.ok(ssh.kernel.modules.includes('virtio_net'), 'the ssh flavour has a network card');
	t.notOk(
		ssh.files.some((f) => f.to === '/usr/sbin/pvagent'),
		'and no agent',
	);
	t.ok(ssh.packages.some((p) => p.name === 'dropbear-bin'));
	t.throws(() => flavourFile(packageRoot, 'nope'), {message: /no image flavour "nope" \(the flavours: default, .*ssh/});
	t.throws(() => flavourFile(packageRoot, '../x'), {message: /bad image flavour name/});
});

t.test('a package may be staged whole, with its dependency closure, less some of it', async (t) => {
	const withPackages = (...packages: unknown[]) => ({...valid, packages});
	const spec = parseImageSpec(
		withPackages({name: 'bpftrace', files: 'all', depends: true, without: ['libclang-cpp14']}, {name: 'zlib1g', files: 'all'}, valid.packages[0]),
	);
	t.same(spec.packages, [
		{name: 'bpftrace', files: 'all', depends: true, without: ['libclang-cpp14']},
		{name: 'zlib1g', files: 'all'},
		{name: 'busybox-static', files: {'bin/busybox': '/bin/busybox'}},
	]);
	const bad: Array<[string, unknown, RegExp]> = [
		['files neither a map nor all', withPackages({name: 'bpftrace', files: 'some'}), /packages\[0\]\.files must map package paths to image paths, or be "all"/],
		['depends not true', withPackages({name: 'bpftrace', files: 'all', depends: 'yes'}), /packages\[0\]\.depends must be true/],
		['depends with a map', withPackages({name: 'bpftrace', files: {'usr/bin/bpftrace': '/x'}, depends: true}), /"depends": true needs "files": "all"/],
		['without alone', withPackages({name: 'bpftrace', files: 'all', without: ['x1']}), /without must be a list of package names, beside "depends": true/],
		['without not names', withPackages({name: 'bpftrace', files: 'all', depends: true, without: ['Bad Name']}), /without must be a list/],
		['a misspelt field', withPackages({name: 'bpftrace', files: 'all', dependencies: true}), /packages\[0\] has unknown field\(s\) dependencies/],
	];
	for (const [name, raw, message] of bad) t.throws(() => parseImageSpec(raw), {name: 'ImageError', message}, name);
	t.ok(wholeExcludes.includes('./usr/share/doc') && wholeExcludes.every((e) => e.startsWith('./') && !e.endsWith('/')), 'excludes are tar member names');
});

t.test('the committed bpftrace flavour: the default guest plus bpftrace and its closure', async (t) => {
	t.ok(listFlavours(packageRoot).includes('bpftrace'));
	const spec = loadImageSpec(flavourFile(packageRoot, 'bpftrace'));
	const base = loadImageSpec(flavourFile(packageRoot));
	t.same(spec.files, base.files, 'every file of the default guest, the agent included');
	t.same(spec.kernel, base.kernel);
	t.same(spec.packages.at(-1), {name: 'bpftrace', files: 'all', depends: true, without: ['libclang-cpp14']});
});
