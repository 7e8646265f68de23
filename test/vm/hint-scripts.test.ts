import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {loadHintScripts, ScriptRuns} from '../../src/vm/hint-scripts.js';

t.test('scripts are read whole; a defect is a usage error naming the file', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-scripts-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const file = (name: string, content: string | Buffer) => {
		fs.writeFileSync(path.join(dir, name), content);
		return path.join(dir, name);
	};
	const long = `${'x'.repeat(40)}.bt`;
	t.same(loadHintScripts([file('pin.bt', 'BEGIN { exit(); }\n'), file(long, 'BEGIN {}')]), [
		{name: 'pin.bt', text: 'BEGIN { exit(); }\n'},
		{name: long.slice(0, 31), text: 'BEGIN {}'},
	]);
	const bad: Array<[string[], RegExp]> = [
		[[path.join(dir, 'none.bt')], /--pv-hint-script .*none\.bt: cannot read it: ENOENT/],
		[[file('empty.bt', '')], /empty\.bt: the file is empty/],
		[[file('big.bt', 'x'.repeat(65537))], /big\.bt: 65537 bytes, over the 64 KiB a script may have/],
		[[file('latin.bt', Buffer.from([0x42, 0xe9, 0x0a]))], /latin\.bt: not UTF-8 text/],
		[[file('nul.bt', 'a\0b')], /nul\.bt: not text \(a NUL byte\)/],
		[Array.from({length: 9}, () => path.join(dir, 'pin.bt')), /at most 8 scripts, not 9/],
	];
	for (const [files, message] of bad) t.throws(() => loadHintScripts(files), {name: 'UsageError', message});
});

t.test("a session's scripts: lines to the log, a failure on stderr with bpftrace's words, stale ones ignored", async (t) => {
	const runs = new ScriptRuns();
	const a = runs.begin('pin.bt');
	const b = runs.begin('bad.bt');
	t.not(a, b);
	t.same(runs.started('pin.bt', 121), {
		event: 'script',
		fields: {name: 'pin.bt', state: 'started', pid: 121},
		summary: 'hint script pin.bt: bpftrace runs in the guest (pid 121)',
	});
	const out = (script: number, stream: 'stdout' | 'stderr' | 'exit' | 'refused', text = '', status = 0, hints = 0) =>
		runs.output({script, stream, status, hints, text});
	t.same(out(a, 'stdout', 'Attaching 2 probes...'), {event: 'script-output', fields: {name: 'pin.bt', stream: 'stdout', line: 'Attaching 2 probes...'}});
	t.same(out(a, 'refused', 'pvhint affinity 9 1', 3), {
		event: 'script-output',
		fields: {name: 'pin.bt', stream: 'refused', line: 'pvhint affinity 9 1', reason: 'no such thread'},
	});
	t.match(out(a, 'refused', 'pvhint affinity 9 7', 34)?.fields, {reason: 'a CPU the guest does not have'});
	t.match(out(a, 'refused', 'x', 99)?.fields, {reason: 'errno 99'});
	t.same(out(b, 'stderr', '/run/pvagent-scripts/2.bt:1:19-20: ERROR: syntax error, unexpected }')?.fields, {
		name: 'bad.bt',
		stream: 'stderr',
		line: 'bad.bt:1:19-20: ERROR: syntax error, unexpected }',
	});
	out(b, 'stderr', 'BEGIN { nonsense( }');
	out(b, 'stderr', '                  ~');
	out(b, 'stderr', "ERROR: couldn't set RLIMIT_MEMLOCK: Operation not permitted");
	t.same(out(b, 'exit', '', 1), {
		event: 'script',
		fields: {name: 'bad.bt', state: 'exited', status: 1, hints: 0},
		warn: 'hint script bad.bt: bpftrace exited with status 1: bad.bt:1:19-20: ERROR: syntax error, unexpected } / BEGIN { nonsense( }',
	});
	t.equal(out(b, 'stdout', 'late'), undefined, 'an ended script says nothing more');
	t.same(out(a, 'exit', '', 0, 4), {
		event: 'script',
		fields: {name: 'pin.bt', state: 'exited', status: 0, hints: 4},
		summary: 'hint script pin.bt ended (4 hints)',
	});
	const c = runs.begin('again.bt');
	t.ok(c > b, 'numbers are never reused');
	runs.reset();
	t.equal(out(c, 'stdout', 'x'), undefined, 'after the agent went, its scripts are gone');
	const d = runs.begin('d.bt');
	t.same(runs.failed(d, 'd.bt', 'no bpftrace in the guest'), {
		event: 'script',
		fields: {name: 'd.bt', state: 'failed', reason: 'no bpftrace in the guest'},
		warn: 'hint script d.bt: no bpftrace in the guest',
	});
	t.equal(out(d, 'stdout', 'x'), undefined);
});

t.test('a long failure is cut', async (t) => {
	const runs = new ScriptRuns();
	const a = runs.begin('a.bt');
	for (let i = 0; i < 30; i++) runs.output({script: a, stream: 'stderr', status: 0, hints: 0, text: `error ${i} ${'y'.repeat(40)}`});
	const news = runs.output({script: a, stream: 'exit', status: 2, hints: 0, text: ''});
	t.ok((news?.warn?.length ?? 0) < 700);
	t.match(news?.warn, /^hint script a\.bt: bpftrace exited with status 2: error 10 /, 'the last 20 error lines');
	t.match(news?.warn, /…$/);
});
