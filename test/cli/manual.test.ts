// pvrun(1) and the completion scripts, from the same table as --help: the manual page renders
// without a warning and names every option and command; the completion scripts, run by real
// bash and zsh, offer pvrun's commands, options and their values.
import {execa} from 'execa';
import t from 'tap';
import {completionScript, manPage} from '../../src/cli/manual.js';
import {commandDocs, pvOptionDocs} from '../../src/cli/reference.js';
import {pvrunCommand} from '../../src/guest/boot.js';

const [node = 'node', ...cli] = pvrunCommand();

t.test('the manual page renders without a warning and names every option and command', async (t) => {
	const page = manPage('9.9.9');
	const r = await execa('groff', ['-man', '-Tutf8', '-ww', '-rLL=100n', '-P-cbou'], {input: page, reject: false});
	t.equal(r.exitCode, 0, r.stderr);
	t.equal(r.stderr, '', 'groff said nothing (-ww: every warning)');
	const text = r.stdout; // -P-cbou: no escape sequences or overstrikes for bold and underline
	t.match(text, /^PVRUN\(1\)/, 'the title');
	t.match(text, /pvrun 9\.9\.9/, 'the version');
	for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'COMMANDS', 'ENVIRONMENT', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO'])
		t.match(text, new RegExp(`^${section}$`, 'm'), `section ${section}`);
	for (const o of pvOptionDocs) t.match(text, `${o.name}${o.arg ? ` ${o.arg}` : ''}`, `${o.name} described`);
	for (const c of commandDocs) t.match(text, c.usage, `${c.name} described`);
	t.match(text, 'set -- $(pvrun image path)', 'the example as one would type it (dashes and $ survive)');
});

t.test('pvrun man and pvrun completion print them; a shell that is none is refused', async (t) => {
	const [man, bash, bad] = await Promise.all([
		execa(node, [...cli, 'man'], {reject: false}),
		execa(node, [...cli, 'completion', 'bash'], {reject: false}),
		execa(node, [...cli, 'completion', 'fish'], {reject: false}),
	]);
	t.equal(man.exitCode, 0, man.stderr);
	t.match(man.stdout, /^\.TH PVRUN 1/);
	t.equal(bash.exitCode, 0, bash.stderr);
	t.equal(bash.stdout, completionScript('bash').trimEnd());
	t.equal(bad.exitCode, 2, 'a usage error');
	t.match(bad.stderr, /fish/);
	t.equal(bad.stderr.trim().split('\n').length, 1, 'one line');
});

/**
 * What the completion offers for each list of words typed so far (the last one being
 * completed), in `shell`, called as the shell calls it: with the command, the word and the one
 * before as arguments; in zsh, as bashcompinit's compgen calls it (emulating sh: arrays from 0),
 * whose candidates zsh's own matching then narrows to the word typed, as here. One shell for
 * all of them (zsh's compinit alone takes most of a second).
 */
async function complete(shell: 'bash' | 'zsh', queries: string[][]): Promise<string[][]> {
	const calls = queries.map((words) => {
		const quoted = words.map((w) => `'${w}'`);
		return `COMP_WORDS=(${quoted.join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _pvrun pvrun ${quoted.at(-1) ?? "''"} ${quoted.at(-2) ?? "''"}; printf '%s\\n' "\${COMPREPLY[@]}" '=='`;
	});
	const script =
		shell === 'zsh'
			? `autoload -U compinit && compinit -u -D; eval "$SCRIPT"; run() { emulate -L sh; setopt kshglob noshglob braceexpand; ${calls.join('; ')}; }; run`
			: `eval "$SCRIPT"; ${calls.join('; ')}`;
	const r = await execa(shell, ['-c', script], {env: {SCRIPT: completionScript(shell)}, reject: false});
	if (r.exitCode !== 0) throw new Error(`${shell}: ${r.stderr}`);
	// Each answer's lines, then a line "==".
	const answers: string[][] = [[]];
	for (const line of r.stdout.split('\n')) {
		if (line === '==') answers.push([]);
		else answers.at(-1)?.push(line);
	}
	return queries.map((words, i) => {
		const typed = words.at(-1) ?? '';
		return (answers[i] ?? []).filter((w) => w && w.startsWith(typed)).sort();
	});
}

for (const shell of ['bash', 'zsh'] as const) {
	t.test(`${shell} completes pvrun's commands, options and values`, async (t) => {
		const cases: Array<[string[], string[], string?]> = [
			[['pvrun', 'st'], ['status'], 'a command'],
			[['pvrun', '--pv-ac'], ['--pv-accel'], 'an option'],
			[['pvrun', '--pv-cs'], ['--pv-cs', '--pv-cs-boost', '--pv-cs-feedback'], 'options sharing a start'],
			[['pvrun', '--pv-accel', ''], ['auto', 'kvm', 'tcg'], "an option's values"],
			[['pvrun', '-m', '512', '--pv-cs', 'o'], ['observe', 'off'], 'among QEMU arguments too'],
			[['pvrun', '--pv-cpus', ''], [], 'nothing to offer for a CPU list'],
			[['pvrun', 'image', ''], ['--flavour', '--force', '--help', 'build', 'list', 'path'], "a command's verbs and options"],
			[['pvrun', 'bench', '--q'], ['--quick'], "a command's option"],
			[
				['pvrun', 'completion', ''],
				['--help', 'bash', 'zsh'],
			],
		];
		const got = await complete(
			shell,
			cases.map(([words]) => words),
		);
		cases.forEach(([words, want, what], i) => t.same(got[i], want, what ?? words.join(' ')));
	});
}
