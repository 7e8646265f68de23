// bin/pvrun and `make install`: pvrun on the PATH through a link to this checkout, which runs
// from anywhere; a file in the way is never overwritten or removed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';

const make = (target: string, prefix: string) =>
	execa('make', ['--no-print-directory', '-C', packageRoot, target, `PREFIX=${prefix}`], {reject: false, env: {MAKEFLAGS: ''}});

t.test('make install links PREFIX/bin/pvrun to bin/pvrun, with pvrun(1) and completion; make uninstall removes only those', async (t) => {
	const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-install-'));
	t.teardown(() => fs.rmSync(prefix, {recursive: true, force: true}));
	const installed = path.join(prefix, 'bin', 'pvrun');
	const first = await make('install', prefix);
	t.equal(first.exitCode, 0, first.stderr);
	t.equal(fs.readlinkSync(installed), path.join(packageRoot, 'bin', 'pvrun'), 'a link to the checkout');
	t.match(first.stdout, `pvrun: ${installed} -> ${path.join(packageRoot, 'bin', 'pvrun')}`, 'it says what it put where');
	const run = await execa(installed, ['--version'], {cwd: os.tmpdir(), reject: false, env: {NODE_OPTIONS: ''}});
	t.equal(run.exitCode, 0, run.stderr);
	t.match(run.stdout, /^pvrun \d+\.\d+\.\d+/, 'the link runs pvrun from another directory');
	const man = path.join(prefix, 'share', 'man', 'man1', 'pvrun.1');
	const completion = path.join(prefix, 'share', 'bash-completion', 'completions', 'pvrun');
	t.match(fs.readFileSync(man, 'utf8'), /^\.TH PVRUN 1/, 'the manual page in share/man/man1');
	const shown = await execa('man', ['-l', '-P', 'cat', man], {reject: false, env: {MANWIDTH: '80'}});
	t.match(shown.stdout, /--pv-cpus/, `man -l shows it (${shown.stderr})`);
	t.match(fs.readFileSync(completion, 'utf8'), /complete -o default -F _pvrun pvrun/, "bash's completion in share/bash-completion");
	t.equal((await make('install', prefix)).exitCode, 0, 'a second install changes nothing and succeeds');
	const gone = await make('uninstall', prefix);
	t.equal(gone.exitCode, 0, gone.stderr);
	t.notOk(fs.existsSync(installed), 'uninstall removed the link');
	t.notOk(fs.existsSync(man) || fs.existsSync(completion), 'the manual page and the completion too');

	fs.writeFileSync(installed, 'a file of the user\n');
	const refused = await make('install', prefix);
	t.not(refused.exitCode, 0, 'install refuses a file in the way');
	t.match(refused.stderr, /exists and is not a link to .*; left alone/);
	t.equal((await make('uninstall', prefix)).exitCode === 0, false, 'uninstall refuses it too');
	t.equal(fs.readFileSync(installed, 'utf8'), 'a file of the user\n', 'and the file is untouched');
});
