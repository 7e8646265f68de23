// The pvrun command line (src/cli/main.ts) as a user runs it: real process, real exit codes.
import fs from 'node:fs';
import path from 'node:path';
import {execa} from 'execa';
import {pvrunCommand} from '../../src/guest/boot.js';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';

const [node = 'node', ...cli] = pvrunCommand();
const run = (...args: string[]) => execa(node, [...cli, ...args], {reject: false});

t.test('--version: the package version (and commit) first, then the QEMU and the Node it uses', async (t) => {
	const {version} = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {version: string};
	const r = await run('--version');
	t.equal(r.exitCode, 0);
	const [first, qemu, nodeLine, extra] = r.stdout.split('\n');
	t.match(first, new RegExp(`^pvrun ${version.replace(/\./g, '\\.')}( \\(commit [0-9a-f]{7,}\\))?$`), 'pvrun and its version');
	if (fs.existsSync(path.join(packageRoot, '.git'))) t.match(first, /\(commit [0-9a-f]{7,}\)$/, 'in a git checkout, its commit');
	t.match(qemu, /^qemu: (QEMU emulator version \S+|qemu-system-x86_64 not found on PATH)/);
	t.equal(nodeLine, `node: ${process.version}`);
	t.equal(extra, undefined, 'three lines');
	const noQemu = await execa(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'main.js'), '--version'], {
		reject: false,
		env: {PATH: '/nonexistent', NODE_OPTIONS: ''},
	});
	t.equal(noQemu.exitCode, 0, 'a missing QEMU is said, not an error');
	t.match(noQemu.stdout, /^qemu: qemu-system-x86_64 not found on PATH/m);
});

t.test('image path prints an existing kernel and initrd', async (t) => {
	const started = performance.now();
	const r = await run('image', 'path');
	t.comment(`pvrun image path (cached): ${((performance.now() - started) / 1000).toFixed(2)} s`);
	t.equal(r.exitCode, 0, r.stderr);
	const [kernel, initrd, extra] = r.stdout.split('\n');
	t.equal(extra, undefined, 'two lines');
	t.ok(kernel && fs.statSync(kernel).isFile(), 'kernel exists');
	t.ok(initrd && fs.statSync(initrd).isFile(), 'initrd exists');
});

t.test('image list shows the cached image', async (t) => {
	const r = await run('image', 'list');
	t.equal(r.exitCode, 0);
	t.match(r.stdout, /^[0-9a-f]{16} {2}\S+ {2}kernel \S+-cloud-amd64 {2}\d+\.\d MB$/m);
});

t.test('a bad command is one line and exit code 2', async (t) => {
	const r = await run('image', 'frobnicate');
	t.equal(r.exitCode, 2);
	t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
	t.match(r.stderr, /^pvrun: /);
});
