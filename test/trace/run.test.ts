// Running bpftrace, against stand-ins (shell scripts) that behave as bpftrace does: output passed
// on, --duration as a SIGINT after the probes are attached, Ctrl-C passed on, the end of the
// traced QEMU, and each failure as one line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {PassThrough} from 'node:stream';
import t, {type Test} from 'tap';
import {blankLineSqueezer, filterStderr, findBpftrace, firstError, forbidden, missingBpftrace, runTrace} from '../../src/trace/run.js';
import {PvrunError} from '../../src/util/errors.js';
import {deadPid} from '../helpers/run-dirs.js';

const memlock =
	'ERROR: Unknown error -1: couldn\'t set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try "ulimit -l 8192" to fix the problem';

/** A directory of stand-ins for bpftrace, removed when `t` ends. */
function standIns(t: Pick<Test, 'teardown'>): (name: string, sh: string) => string {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-trace-run-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	return (name, sh) => {
		const file = path.join(dir, name);
		fs.writeFileSync(file, `#!/bin/sh\n${sh}\n`, {mode: 0o755});
		return file;
	};
}

/** A stream that keeps what is written to it. */
function sink(): PassThrough & {text: () => string} {
	const s = new PassThrough();
	let text = '';
	s.on('data', (d: Buffer) => (text += d.toString()));
	return Object.assign(s, {text: () => text});
}

// Like bpftrace: the memlock complaint, the probes attached, then the maps at SIGINT or SIGTERM.
const tracing = `echo '${memlock.replace(/'/g, `'\\''`)}' >&2
trap 'printf "\\n\\n@runq_us[CPU 0/TCG, 42]: \\n[1]  3 |@@@|\\n\\n\\n\\n\\n"; exit 0' INT TERM
echo 'Attaching 3 probes...'
echo "args: $*"
while :; do sleep 0.05; done`;

t.test('bpftrace on PATH, or not installed', async (t) => {
	const make = standIns(t);
	const file = make('bpftrace', 'exit 0');
	const dir = path.dirname(file);
	t.equal(findBpftrace(`/nonexistent:${dir}`), file);
	t.equal(findBpftrace('/nonexistent::'), undefined);
	fs.chmodSync(file, 0o644);
	t.equal(findBpftrace(dir), undefined, 'not executable');
	t.match(missingBpftrace, /make setup installs it \(or apt-get install bpftrace\)/);
});

t.test("bpftrace's stderr: the memlock complaint dropped, the first ERROR, refusals told apart", async (t) => {
	t.equal(filterStderr(`${memlock}\nreal: one\n`), 'real: one\n');
	t.equal(firstError('WARNING: x\nstdin:1:1-4: ERROR: Unknown identifier\n  ^^^\n'), 'stdin:1:1-4: ERROR: Unknown identifier');
	t.equal(firstError('\nno error word\n'), 'no error word');
	t.equal(firstError(''), undefined);
	t.ok(forbidden('ERROR: bpftrace currently only supports running as the root user.'), 'not root');
	t.ok(forbidden('ERROR: Error loading program: tracepoint (Operation not permitted)'), 'no capability');
	t.ok(forbidden('Kernel is locked down (lockdown=confidentiality)'), 'lockdown');
	t.notOk(forbidden('runqlat.bt:12:3-9: ERROR: Unknown identifier: $x'), "a script's error is not a refusal");
});

t.test('blank lines: at most one in a row, across chunks', async (t) => {
	const squeeze = blankLineSqueezer();
	t.equal(['a\n', '\n', '\n\nb\n\n', '\n\nc'].map(squeeze).join(''), 'a\n\nb\n\nc');
});

t.test('--duration: SIGINT that long after the probes are attached; the maps passed on, exit 0', async (t) => {
	const make = standIns(t);
	const out = sink();
	const err = sink();
	const started = performance.now();
	await runTrace({bpftrace: make('bpftrace', tracing), args: ['-B', 'none', 'x.bt', '7'], what: 'x.bt on vm', durationS: 0.5, qemuPid: process.pid, out, err});
	const ms = performance.now() - started;
	t.ok(ms >= 500 && ms < 10_000, `ended after ${ms.toFixed(0)} ms`);
	t.match(out.text(), /^Attaching 3 probes\.\.\.\nargs: -B none x\.bt 7\n/, 'its output, as it came');
	t.match(out.text(), /@runq_us\[CPU 0\/TCG, 42\]: \n\[1\] {2}3 \|@@@\|\n/, 'the maps it printed at SIGINT');
	t.notMatch(out.text(), /\n\n\n/, 'no run of blank lines');
	t.equal(err.text(), '', 'the memlock complaint left out');
});

t.test('Ctrl-C (and SIGTERM) reach bpftrace, which prints its maps and ends: exit 0', async (t) => {
	const make = standIns(t);
	const listeners = process.listenerCount('SIGINT');
	for (const signal of ['SIGINT', 'SIGTERM'] as const) {
		const out = sink();
		const run = runTrace({bpftrace: make('bpftrace', tracing), args: [], what: 'x.bt on vm', qemuPid: process.pid, out, err: sink()});
		// Once it is tracing, the signal as pvrun would receive it (its listeners, not this process's end).
		await new Promise<void>((resolve) => out.once('data', () => resolve()));
		process.emit(signal, signal);
		await run;
		t.match(out.text(), /@runq_us/, `${signal}: the maps`);
	}
	t.equal(process.listenerCount('SIGINT'), listeners, 'no listener left behind');
});

t.test('the traced QEMU ends: bpftrace is asked to end, and says so', async (t) => {
	const make = standIns(t);
	const out = sink();
	const err = sink();
	await runTrace({bpftrace: make('bpftrace', tracing), args: [], what: 'x.bt on vm', qemuPid: deadPid, out, err});
	t.equal(err.text(), `pvrun: QEMU ${deadPid} ended: tracing ends\n`);
	t.match(out.text(), /@runq_us/);
});

t.test("failures: one line; a script's error after bpftrace's own message", async (t) => {
	const make = standIns(t);
	const err = sink();
	const syntax = make(
		'bpftrace',
		`echo '${memlock.replace(/'/g, `'\\''`)}' >&2; printf 'x.bt:3:5-9: ERROR: Unknown identifier: $y\\n    $y = 1;\\n    ~~\\n' >&2; exit 1`,
	);
	await t.rejects(
		runTrace({bpftrace: syntax, args: [], what: 'x.bt on vm', qemuPid: process.pid, out: sink(), err}),
		new PvrunError('bpftrace failed (exit status 1) on x.bt on vm: x.bt:3:5-9: ERROR: Unknown identifier: $y'),
	);
	t.equal(err.text(), 'x.bt:3:5-9: ERROR: Unknown identifier: $y\n    $y = 1;\n    ~~\n', "bpftrace's message, whole, without the memlock line");

	const notRoot = sink();
	await t.rejects(
		runTrace({
			bpftrace: make('bpftrace', `echo 'ERROR: bpftrace currently only supports running as the root user.' >&2; exit 1`),
			args: [],
			what: 'x.bt on vm',
			qemuPid: process.pid,
			out: sink(),
			err: notRoot,
		}),
		/^bpftrace may not load BPF programs here \(ERROR: bpftrace currently only supports running as the root user\.\): run pvrun trace as root/,
	);
	t.equal(notRoot.text(), '', 'a refusal is one line, nothing before it');

	await t.rejects(
		runTrace({bpftrace: make('bpftrace', 'kill -KILL $$'), args: [], what: 'x.bt on vm', qemuPid: process.pid, out: sink(), err: sink()}),
		/^bpftrace was killed by SIGKILL on x\.bt on vm$/,
	);
	await t.rejects(
		runTrace({bpftrace: '/nonexistent/bpftrace', args: [], what: 'x.bt on vm', qemuPid: process.pid, out: sink(), err: sink()}),
		new PvrunError(missingBpftrace),
	);
});
