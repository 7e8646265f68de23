// Progress lines (src/util/progress.ts): when live progress suits a stream
// (a terminal, not CI, not TERM=dumb); elsewhere one plain `prefix: text: ...`
// line per finished step, with its time, and nothing for updates, checked on a
// stream the test gives and in a child Node process whose stderr is a pipe
// (the default stream; stdout stays empty); and a spinner on a real terminal
// (a child under script(1)).
import path from 'node:path';
import {execa} from 'execa';
import {pathToFileURL} from 'node:url';
import t, {type Test} from 'tap';
import {createProgress, isInteractive} from '../../src/util/progress.js';
import {packageRoot} from '../../src/util/paths.js';

/** A stream that keeps what is written to it; `isTTY` as given, and a terminal's width (80 unless given). */
function sink(isTTY?: boolean, columns = isTTY ? 80 : undefined): {stream: NodeJS.WriteStream; text: () => string} {
	const chunks: string[] = [];
	const stream = {
		isTTY,
		columns,
		write(chunk: string | Uint8Array): boolean {
			chunks.push(String(chunk));
			return true;
		},
	};
	return {stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('')};
}

/** Set environment variables for this test (undefined: unset), restored after it. */
function env(t: Pick<Test, 'teardown'>, vars: Record<string, string | undefined>): void {
	for (const [name, value] of Object.entries(vars)) {
		const before = process.env[name];
		t.teardown(() => {
			if (before === undefined) delete process.env[name];
			else process.env[name] = before;
		});
		if (value === undefined) delete process.env[name];
		else process.env[name] = value;
	}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The progress module, as a child imports it. */
const module = pathToFileURL(path.join(packageRoot, 'dist', 'util', 'progress.js')).href;
const childCode = `
	import {createProgress} from ${JSON.stringify(module)};
	const progress = createProgress('pvrun test');
	progress.info('starting');
	const step = progress.step('building the image');
	step.update('downloading');
	await new Promise((r) => setTimeout(r, 150));
	step.done('42 MB');
	progress.step('booting').fail('timeout');
`;

/** Run `command` with `args` (killed after 10 s); its exit status or signal, stdout and stderr. */
async function run(
	command: string,
	args: string[],
	extraEnv: Record<string, string | undefined>,
): Promise<{status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string}> {
	const environment = {...process.env, ...extraEnv};
	for (const [name, value] of Object.entries(extraEnv)) if (value === undefined) delete environment[name];
	const r = await execa(command, args, {reject: false, stdin: 'ignore', env: environment, extendEnv: false, timeout: 10_000, stripFinalNewline: false});
	return {status: r.exitCode ?? null, signal: r.signal ?? null, stdout: r.stdout, stderr: r.stderr};
}

t.test('live progress only on a terminal that says its width, outside CI, with a capable TERM', async (t) => {
	env(t, {CI: undefined, TERM: 'xterm-256color'});
	t.equal(isInteractive(sink(true).stream), true, 'a terminal');
	t.equal(isInteractive(sink(false).stream), false, 'not a terminal (a pipe, a file)');
	t.equal(isInteractive(sink(undefined).stream), false, 'a stream that does not say');
	t.equal(isInteractive(sink(true, 0).stream), false, 'a terminal of width 0 (a pty nobody sized)');
	process.env['CI'] = 'true';
	t.equal(isInteractive(sink(true).stream), false, 'a terminal in CI');
	delete process.env['CI'];
	process.env['TERM'] = 'dumb';
	t.equal(isInteractive(sink(true).stream), false, 'TERM=dumb');
});

t.test('on a stream that is no terminal: one plain line per finished step, nothing for updates', async (t) => {
	const {stream, text} = sink(false);
	const progress = createProgress('pvrun image', stream);
	const step = progress.step('building');
	step.update('apt: 3 of 9 packages');
	step.update('apt: 9 of 9 packages');
	t.equal(text(), '', 'a step that is under way prints nothing, its updates neither');
	await sleep(120);
	step.done();
	progress.step('downloading').done('42 MB');
	progress.step('checking').fail();
	progress.step('booting').fail('no console output within 60 s');
	progress.info('cached at /var/cache/pvrun');
	const lines = text().split('\n');
	t.equal(lines.pop(), '', 'every line ends with a newline');
	t.match(
		lines,
		[
			/^pvrun image: building: done \((\d+\.\d) s\)$/,
			/^pvrun image: downloading: 42 MB \(0\.\d s\)$/,
			/^pvrun image: checking: failed \(0\.\d s\)$/,
			/^pvrun image: booting: no console output within 60 s \(0\.\d s\)$/,
			'pvrun image: cached at /var/cache/pvrun',
		],
		'prefix, step, outcome (or its detail), time taken; info as it is',
	);
	t.equal(lines.length, 5, 'one line each');
	const seconds = Number(/\((\d+\.\d) s\)$/.exec(lines[0] ?? '')?.[1]);
	t.ok(seconds >= 0.1 && seconds < 5, `the time is the step's own, to a tenth of a second (${seconds} s)`);
	t.notOk(text().includes('\x1b'), 'no escape sequences');
});

t.test('a terminal in CI gets plain lines too', async (t) => {
	env(t, {CI: '1'});
	const {stream, text} = sink(true);
	const progress = createProgress('pvrun bench', stream);
	const step = progress.step('matrix');
	step.update('3 of 12 runs');
	step.done('12 runs');
	t.match(text(), /^pvrun bench: matrix: 12 runs \(0\.\d s\)\n$/, 'one plain line');
});

t.test('by default on stderr: a child process with stderr piped prints plain lines there, nothing on stdout', async (t) => {
	const r = await run(process.execPath, ['--input-type=module', '-e', childCode], {CI: undefined});
	t.equal(r.status, 0, `the child ran ${r.stderr}`);
	t.equal(r.stdout, '', 'stdout stays for results');
	t.match(
		r.stderr.split('\n'),
		['pvrun test: starting', /^pvrun test: building the image: 42 MB \(0\.[1-9] s\)$/, /^pvrun test: booting: timeout \(0\.0 s\)$/, ''],
		'the info line, then a line per step when it ends',
	);
});

/** The child above on a terminal (script(1)) of `columns` columns; what it drew on the terminal. */
function onTerminal(columns: number) {
	const command = `stty cols ${columns} rows 24; exec ${process.execPath} --input-type=module -e ${shellQuote(childCode)}`;
	return run('script', ['-qec', command, '/dev/null'], {CI: undefined, TERM: 'xterm'});
}

t.test('on a real terminal: a spinner, redrawn, ending in the same line', async (t) => {
	const r = await onTerminal(80);
	t.equal(r.status, 0, `finished (${r.signal ?? 'no signal'})`);
	t.ok(r.stdout.includes('\x1b['), 'escape sequences (the spinner is drawn and redrawn)');
	t.match(r.stdout, /pvrun test: building the image: 42 MB \(0\.[1-9] s\)/, 'the finished step');
	t.match(r.stdout, /pvrun test: booting: timeout \(0\.0 s\)/, 'the failed step');
	t.match(r.stdout, /pvrun test: starting\r?\n/, 'info as a plain line');
});

t.test('on a terminal that says no width (a pty nobody sized): plain lines, and each step ends', async (t) => {
	const r = await onTerminal(0);
	t.equal(r.status, 0, `finished (${r.signal ?? 'no signal'})`);
	t.ok(r.stdout.length < 1000, `a few lines drawn, not cursor movements until killed (${r.stdout.length} bytes)`);
	// At most 2 KB of it in a failure's diff: the hang draws megabytes.
	t.match(
		r.stdout.slice(0, 2048).split('\r\n'),
		['pvrun test: starting', /^pvrun test: building the image: 42 MB \(0\.[1-9] s\)$/, /^pvrun test: booting: timeout \(0\.0 s\)$/, ''],
		'one plain line each',
	);
});

/** `text` quoted for a POSIX shell. */
function shellQuote(text: string): string {
	return `'${text.replaceAll("'", `'\\''`)}'`;
}
