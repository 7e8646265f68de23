// `pvrun --help`, `pvrun` alone, and the informational arguments that are QEMU's.
import {spawnSync} from 'node:child_process';
import {execa} from 'execa';
import {pvrunCommand} from '../../src/guest/boot.js';
import t from 'tap';
import {pvOptionDocs} from '../../src/cli/reference.js';

const [node = 'node', ...cli] = pvrunCommand();
const run = (...args: string[]) => execa(node, [...cli, ...args], {reject: false});
const qemuInstalled = !spawnSync('qemu-system-x86_64', ['-version']).error;

t.test('--help fits one screen: at most 24 lines of at most 80 columns', async (t) => {
	const r = await run('--help');
	t.equal(r.exitCode, 0);
	const lines = r.stdout.split('\n');
	t.ok(lines.length <= 24, `${lines.length} lines`);
	const wide = lines.filter((l) => !/^[\x20-\x7e]{0,80}$/.test(l));
	t.same(wide, [], 'every line is printable ASCII (no tabs, one column per character) and at most 80 columns');
	for (const o of pvOptionDocs)
		t.equal(
			lines.filter((l) => l.startsWith(`  ${o.name} `)).length,
			o.manOnly ? 0 : 1,
			`${o.name} has ${o.manOnly ? 'no line (pvrun man has it)' : 'a line'}`,
		);
	for (const command of ['status', 'image', 'agent', 'bench'])
		t.equal(lines.filter((l) => l.startsWith(`  pvrun ${command}`)).length, 1, `pvrun ${command} has a line`);
	t.equal(lines.filter((l) => l.startsWith('  pvrun image|demo ')).length, 1, "pvrun demo is on image's line");
	t.match(r.stdout, /--version/);
});

t.test('the example in --help is a real command line', async (t) => {
	const r = await run('--help');
	// The example: "  pvrun --pv-... \" continued on the next line.
	const start = r.stdout.indexOf('  pvrun --pv-');
	t.ok(start >= 0, 'the example uses a --pv- option');
	// Its lines: the first, and each after one that ends in a backslash.
	const example = (/^.*?(?:\\\n.*?)*$/m.exec(r.stdout.slice(start))?.[0] ?? '').replace(/\\\n/g, ' ');
	const argv = example
		.trim()
		.split(/\s+/)
		.slice(1)
		.map((a) => a.replace('"$1"', 'vmlinuz').replace('"$2"', 'initrd.img'));
	t.ok(argv.includes('-kernel') && argv.includes('-nographic'), argv.join(' '));
	const dry = await run('--pv-dry-run', ...argv);
	t.equal(dry.exitCode, 0, dry.stderr);
	t.match(dry.stdout, /^qemu-system-x86_64\n-m\n512\n[^]*\n-kernel\nvmlinuz\n-initrd\ninitrd.img\n/);
	t.match(r.stdout, /set -- \$\(pvrun image path\)/, 'kernel and initrd come from pvrun image path');
});

t.test('pvrun with no arguments prints the help on stderr and exits 2', async (t) => {
	const [bare, help] = await Promise.all([run(), run('--help')]);
	t.equal(bare.exitCode, 2);
	t.equal(bare.stdout, '');
	t.equal(bare.stderr, help.stdout);
});

t.test("--version is pvrun's; -version, -h and -help are QEMU's", {skip: qemuInstalled ? false : 'qemu-system-x86_64 is not installed'}, async (t) => {
	const own = await run('--version');
	t.match(own.stdout, /^pvrun \d+\.\d+\.\d+/);
	const qemuVersion = await run('-version');
	t.equal(qemuVersion.exitCode, 0, qemuVersion.stderr);
	t.match(qemuVersion.stdout, /^QEMU emulator version /);
	for (const flag of ['-h', '-help']) {
		const r = await run(flag);
		t.equal(r.exitCode, 0, r.stderr);
		t.match(r.stdout, /^QEMU emulator version [^]*usage: qemu-system-x86_64/, `${flag} is QEMU's help`);
	}
});

t.test('subcommand help still comes from yargs', async (t) => {
	const r = await run('status', '--help');
	t.equal(r.exitCode, 0, r.stderr);
	t.match(r.stdout, /--json/);
});
