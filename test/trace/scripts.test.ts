// The shipped bpftrace scripts: each says what it measures and takes the parameters pvrun
// fills, compiles with the host's bpftrace (--emit-elf: nothing is loaded), and is run with
// the command line built here.
import {execFileSync, spawnSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {bpftraceArgs, findScript, formatScriptList, listScripts, parseHeader, readScript, traceDir} from '../../src/trace/scripts.js';
import {PvrunError, UsageError} from '../../src/util/errors.js';

const header = (lines: string[]): string => ['#!/usr/bin/env bpftrace', '/*', ...lines.map((l) => ` * ${l}`), ' */', 'BEGIN { exit(); }', ''].join('\n');

t.test('pvrun ships runqlat, preempt and hint-delay, each with a line saying what it measures', async (t) => {
	const scripts = listScripts();
	t.same(
		scripts.map((s) => s.name),
		['hint-delay', 'preempt', 'runqlat'],
		'by name',
	);
	for (const s of scripts) {
		t.ok(s.description.length > 20 && !s.description.includes('\n'), `${s.name}: ${s.description}`);
		t.equal(s.file, path.join(traceDir, `${s.name}.bt`));
		t.equal(s.params[0], 'QEMU_PID', `${s.name} takes the QEMU pid first`);
		const text = fs.readFileSync(s.file, 'utf8');
		t.ok(text.startsWith('#!/usr/bin/env bpftrace\n'), `${s.name} runs as a program`);
		t.ok((fs.statSync(s.file).mode & 0o111) !== 0, `${s.name} is executable`);
		t.match(text, /Output, when tracing ends/, `${s.name}'s header says how to read its output`);
		t.match(text, /µs|microseconds/, `${s.name}'s header names the unit`);
		// bpftrace 0.17 mangles other characters in its JSON output (-f json).
		const printed = [...text.matchAll(/printf\("([^"]*)"/g)].map((m) => m[1] ?? '');
		t.ok(printed.length > 0 && printed.every((f) => /^[\x20-\x7e]*$/.test(f)), `${s.name} prints ASCII only`);
	}
	t.same(scripts.find((s) => s.name === 'hint-delay')?.params, ['QEMU_PID', 'PVRUN_PID'], "hint-delay also takes pvrun's pid");
	t.same(scripts.find((s) => s.name === 'runqlat')?.params, ['QEMU_PID'], 'runqlat the QEMU pid alone');
});

t.test('a header: the description line, the parameters up to the first word that is none', async (t) => {
	t.same(parseHeader('x', header(['x.bt - what it measures, in µs', '', 'Usage: bpftrace x.bt QEMU_PID [PVRUN_PID]  (or: pvrun trace x [--vm VM])'])), {
		description: 'what it measures, in µs',
		params: ['QEMU_PID', 'PVRUN_PID'],
	});
	t.same(parseHeader('a.b', header(['a.b.bt - dots in the name', 'Usage: bpftrace a.b.bt'])).params, [], 'no parameters');
	t.throws(() => parseHeader('x', header(['Usage: bpftrace x.bt QEMU_PID'])), /no line " \* x\.bt - /, 'no description');
	t.throws(() => parseHeader('x', header(['x.bt - something'])), /no line " \* Usage: bpftrace x\.bt/, 'no usage');
	t.throws(
		() => parseHeader('x', header(['x.bt - something', 'Usage: bpftrace x.bt QEMU_PID GUEST_PID'])),
		/GUEST_PID is none pvrun knows/,
		'an unknown parameter',
	);
	t.throws(() => parseHeader('x', `BEGIN {}\n// x.bt - after the code\n`), /no line/, 'a line outside the header comment does not count');
});

t.test('a script by name, with or without .bt, or a file of the user', async (t) => {
	t.equal(findScript('runqlat').name, 'runqlat');
	t.equal(findScript('preempt.bt').name, 'preempt');
	t.throws(() => findScript('nosuch'), new UsageError('no trace script "nosuch": hint-delay, preempt, runqlat (pvrun trace lists them)'));
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-trace-test-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const mine = path.join(dir, 'mine.bt');
	fs.writeFileSync(mine, header(['mine.bt - my own', 'Usage: bpftrace mine.bt QEMU_PID']));
	t.match(findScript(mine), {name: 'mine', file: mine, description: 'my own', params: ['QEMU_PID']}, 'a path to a file of the user');
	t.throws(() => findScript(path.join(dir, 'gone.bt')), UsageError, 'a path that names nothing');
	const bad = path.join(dir, 'bad.bt');
	fs.writeFileSync(bad, 'BEGIN {}\n');
	t.throws(() => readScript(bad), PvrunError, 'a file without a header');
	t.throws(() => listScripts(path.join(dir, 'none')), /cannot list the trace scripts/);
});

t.test('the list: a line per script, names aligned, then how to run one', async (t) => {
	const text = formatScriptList([
		{name: 'a', file: '/a.bt', description: 'first', params: ['QEMU_PID']},
		{name: 'longer', file: '/longer.bt', description: 'second', params: ['QEMU_PID']},
	]);
	t.same(text.split('\n').slice(0, 2), ['a       first', 'longer  second']);
	t.match(text, /pvrun trace NAME \[--vm VM\] \[--duration SECONDS\]/);
});

t.test("bpftrace's arguments: unbuffered, the caller's options, the script, its parameters", async (t) => {
	const hint = findScript('hint-delay');
	t.same(bpftraceArgs(hint, {qemuPid: 123, pvrunPid: 120}), ['-B', 'none', hint.file, '123', '120']);
	t.same(bpftraceArgs(hint, {qemuPid: 123}), ['-B', 'none', hint.file, '123', '0'], 'a plain QEMU: re-pins by anyone (PVRUN_PID 0)');
	const runq = findScript('runqlat');
	t.same(bpftraceArgs(runq, {qemuPid: 9, pvrunPid: 8}, ['-f', 'json']), ['-B', 'none', '-f', 'json', runq.file, '9'], 'options before the script');
});

const bpftrace = spawnSync('bpftrace', ['--version'], {encoding: 'utf8'});
t.test(
	'each script compiles with the host bpftrace (nothing loaded)',
	{skip: bpftrace.status !== 0 ? 'bpftrace is not installed (make setup)' : false},
	async (t) => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-trace-elf-'));
		t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
		for (const s of listScripts()) {
			const elf = path.join(dir, `${s.name}.elf`);
			t.doesNotThrow(() => execFileSync('bpftrace', ['--emit-elf', elf, s.file, ...s.params.map(() => '1')], {stdio: 'pipe', timeout: 60_000}), s.name);
			t.ok(fs.existsSync(elf) && fs.statSync(elf).size > 0, `${s.name}: BPF object written (${bpftrace.stdout.trim()})`);
		}
	},
);
