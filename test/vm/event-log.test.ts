// The decision log (src/vm/event-log.ts): one JSON line per event (t, ms,
// event, then the fields) appended to a real file and read back by
// readEventLog; loggedVm; nothing after close. What goes to stderr (fd 2,
// written with write(2)) is checked in child Node processes that import
// dist/vm/event-log.js with stderr piped: a log that cannot be written
// (/dev/full) says so once and pvrun carries on; summaries only when asked;
// warnings and said events always. Needs `make build`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import {pathToFileURL} from 'node:url';
import t, {type Test} from 'tap';
import {Ajv} from 'ajv';
import {EventLog, eventLogVersion, levelOf, logBudget, logRateFromEnv, loggedVm, readEventLog, type LoggedEvent} from '../../src/vm/event-log.js';
import {packageRoot} from '../../src/util/paths.js';

function tempDir(t: Pick<Test, 'teardown'>): string {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-event-log-test-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	return dir;
}

/** Run `body` in a child Node process with `EventLog` and `writeStderr` imported from dist/; its stdout and stderr. */
async function inChild(body: string): Promise<{status: number | null; stdout: string; stderr: string}> {
	const module = pathToFileURL(path.join(packageRoot, 'dist', 'vm', 'event-log.js')).href;
	const code = `import {EventLog, writeStderr} from ${JSON.stringify(module)};\n${body}`;
	const r = await execa(process.execPath, ['--input-type=module', '-e', code], {reject: false, stdin: 'ignore', stripFinalNewline: false});
	return {status: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr};
}

t.test('each event is one JSON line: t, ms, v, vm, level, event, then the fields', async (t) => {
	const file = path.join(tempDir(t), 'events.jsonl');
	const log = new EventLog(file, false, {vm: 'pvrun-42-abc'});
	const before = Date.now();
	log.write('start', {qemuPid: 4242, accel: 'tcg', kvm: false, note: null});
	await new Promise((r) => setTimeout(r, 20));
	log.write('pin', {vcpu: 1, cpus: [2, 3], counts: {badSeq: 1}}, 'a summary (not shown: summaries are off)');
	log.close();
	const after = Date.now();
	const lines = fs.readFileSync(file, 'utf8').split('\n');
	t.equal(lines.length, 3, 'two lines, each ended by a newline');
	t.equal(lines[2], '', 'the file ends with a newline');
	const [start, pin] = lines.slice(0, 2).map((l) => JSON.parse(l) as Record<string, unknown>);
	t.same(
		Object.keys(start ?? {}),
		['t', 'ms', 'v', 'vm', 'level', 'event', 'qemuPid', 'accel', 'kvm', 'note'],
		'the time, the format version, the VM, the level, the event, then its fields in order',
	);
	t.match(start, {v: eventLogVersion, vm: 'pvrun-42-abc', level: 'info'}, 'version 1, the VM id given, info');
	t.match(start, {event: 'start', qemuPid: 4242, accel: 'tcg', kvm: false, note: null}, 'the fields as given');
	t.same(
		pin,
		{t: pin?.['t'], ms: pin?.['ms'], v: 1, vm: 'pvrun-42-abc', level: 'info', event: 'pin', vcpu: 1, cpus: [2, 3], counts: {badSeq: 1}},
		'arrays and counter objects too',
	);
	const times = [start, pin].map((e) => Date.parse(String(e?.['t'])));
	t.ok(
		times.every((time) => time >= before - 1 && time <= after + 1),
		`t is the wall-clock time, ISO 8601 (${String(start?.['t'])})`,
	);
	t.match(String(start?.['t']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'in UTC');
	const ms = [start, pin].map((e) => e?.['ms'] as number);
	t.ok(ms[0] !== undefined && ms[0] >= 0 && ms[0] < 1000, `ms: since the log was opened (${ms[0]})`);
	t.ok((ms[1] ?? 0) - (ms[0] ?? 0) >= 19, `and grows with time (${ms[0]} → ${ms[1]})`);
	t.match(lines[1], /"ms":\d+(\.\d{1,3})?,/, 'to the microsecond at most');
});

t.test('readEventLog reads every event back; none before the file exists', async (t) => {
	const dir = tempDir(t);
	const file = path.join(dir, 'events.jsonl');
	t.same(readEventLog(file), [], 'no file yet: no events');
	fs.writeFileSync(file, `${JSON.stringify({event: 'earlier', n: 1})}\n`);
	const log = new EventLog(file, false);
	log.write('vcpus', {threads: [11, 12]});
	log.write('exit', {status: 0});
	log.close();
	const events = readEventLog(file);
	t.same(
		events.map((e) => e.event),
		['earlier', 'vcpus', 'exit'],
		'appended to what the file held',
	);
	t.same(events[1]?.['threads'], [11, 12], 'with their fields');
	fs.appendFileSync(file, '\n\n');
	t.equal(readEventLog(file).length, 3, 'blank lines are skipped');
	t.throws(() => readEventLog(dir), {code: 'EISDIR'}, 'a path that is no file is an error');
});

t.test('no file: events go nowhere, and nothing fails', async (t) => {
	const log = new EventLog(undefined, false);
	t.doesNotThrow(() => log.write('pin', {vcpu: 0}), 'write');
	t.doesNotThrow(() => log.close(), 'close');
	t.doesNotThrow(() => log.close(), 'close again');
});

t.test('nothing is written after close', async (t) => {
	const file = path.join(tempDir(t), 'events.jsonl');
	const log = new EventLog(file, false);
	log.write('start', {qemuPid: 1});
	log.close();
	const size = fs.statSync(file).size;
	log.write('late', {from: 'a timer that fired after the end'});
	t.equal(fs.statSync(file).size, size, 'a late write adds nothing');
	t.same(
		readEventLog(file).map((e) => e.event),
		['start'],
		'the log is as it was closed',
	);
	t.doesNotThrow(() => log.close(), 'close again');

	// say and warn write to stderr too: in a child, so that its stderr can be read.
	const r = await inChild(`
		const log = new EventLog(${JSON.stringify(file)}, true);
		log.close();
		log.write('late', {}, 'a summary');
		log.say('hints', {state: 'active'}, 'hints active');
		log.warn('a warning');
	`);
	t.equal(r.status, 0, 'the child ran');
	t.equal(r.stderr, '', 'no summary, said event or warning after close');
	t.same(
		readEventLog(file).map((e) => e.event),
		['start'],
		'and nothing in the file',
	);
});

t.test('a log that cannot be written stops after one line on stderr; pvrun carries on', async (t) => {
	const r = await inChild(`
		const log = new EventLog('/dev/full', true);
		log.write('start', {qemuPid: 1});
		log.write('pin', {vcpu: 0}, 'vCPU 0 pinned');
		log.write('pin', {vcpu: 1});
		log.warn('still warning');
		log.close();
		process.stdout.write('carried on');
	`);
	t.equal(r.status, 0, 'the process did not fail');
	t.equal(r.stdout, 'carried on', 'and went on after the failed writes');
	t.same(
		r.stderr.split('\n'),
		['pvrun: event log stopped: ENOSPC: no space left on device, write', 'pvrun: vCPU 0 pinned\r', 'pvrun: still warning', ''],
		'one line saying the log stopped, and why; summaries and warnings still shown',
	);
});

t.test('summaries go to stderr only when asked; said events and warnings always', async (t) => {
	const dir = tempDir(t);
	const run = (summaries: boolean, file: string) =>
		inChild(`
			const log = new EventLog(${JSON.stringify(file)}, ${summaries});
			log.write('pin', {vcpu: 1, pcpu: 3}, 'vCPU 1 → CPU 3');
			log.write('usage', {vcpu: 1});
			log.say('hints', {state: 'inactive', reason: 'no agent'}, 'hints inactive: no agent');
			log.warn('something odd');
			log.close();
		`);
	const quiet = path.join(dir, 'quiet.jsonl');
	const shown = path.join(dir, 'shown.jsonl');
	const [off, on] = await Promise.all([run(false, quiet), run(true, shown)]);
	t.equal(off.stderr, 'pvrun: hints inactive: no agent\npvrun: something odd\n', 'without summaries: the said event and the warning');
	t.equal(
		on.stderr,
		'pvrun: vCPU 1 → CPU 3\r\npvrun: hints inactive: no agent\npvrun: something odd\n',
		'with: the summary first (\\r\\n: the terminal may be raw), only for an event that has one',
	);
	for (const [name, file] of [
		['without summaries', quiet],
		['with summaries', shown],
	] as const) {
		const events: LoggedEvent[] = readEventLog(file);
		t.same(
			events.map(({t: _t, ms: _ms, v: _v, ...e}) => e),
			[
				{level: 'info', event: 'pin', vcpu: 1, pcpu: 3},
				{level: 'info', event: 'usage', vcpu: 1},
				{level: 'info', event: 'hints', state: 'inactive', reason: 'no agent'},
				{level: 'warn', event: 'warning', message: 'something odd'},
			],
			`${name}: every event logged, a warning as a warning event`,
		);
	}
});

t.test('writeStderr writes to fd 2 as it is; a stderr that is gone is no error', async (t) => {
	const r = await inChild(`writeStderr('raw\\ttext\\n'); writeStderr('second');`);
	t.equal(r.stderr, 'raw\ttext\nsecond', 'the text as given, nothing added');
	const closed = await inChild(`
		import fs from 'node:fs';
		fs.closeSync(2);
		writeStderr('into nothing\\n');
		process.stdout.write('carried on');
	`);
	t.equal(closed.stdout, 'carried on', 'a closed stderr drops the line');
	t.equal(closed.status, 0, 'and the process goes on');
});

t.test('loggedVm: the QEMU pid and the last vCPU threads, once both are logged', async (t) => {
	const start: LoggedEvent = {event: 'start', qemuPid: 4242};
	const vcpus = (threads?: number[]): LoggedEvent => (threads ? {event: 'vcpus', threads} : {event: 'vcpus'});
	t.equal(loggedVm([]), undefined, 'nothing logged');
	t.equal(loggedVm([start]), undefined, 'no vcpus yet');
	t.equal(loggedVm([vcpus([1, 2])]), undefined, 'no start');
	t.same(loggedVm([start, {event: 'pin'}, vcpus([101, 102])]), {qemuPid: 4242, threads: [101, 102]}, 'both');
	t.same(loggedVm([start, vcpus([101, 102]), vcpus([101, 102, 103])]), {qemuPid: 4242, threads: [101, 102, 103]}, 'the last vcpus event (after hot-plug)');
	t.same(loggedVm([vcpus([7]), start]), {qemuPid: 4242, threads: [7]}, 'in any order');
	t.same(loggedVm([start, vcpus()]), {qemuPid: 4242, threads: []}, 'a vcpus event without threads: none');
});

t.test('a flood of one kind is capped and summarised with exact counts; other kinds, start and exit still get through', async (t) => {
	const file = path.join(tempDir(t), 'events.jsonl');
	let now = 0;
	const log = new EventLog(file, false, {now: () => now});
	log.write('start', {qemuPid: 1});
	const flood = 100_000;
	for (let i = 0; i < flood; i++) {
		log.write('hint', {seq: i});
		if (i % 1000 === 999) now += 10; // 100,000 lines in 1 s of the log's clock
	}
	log.write('pin', {vcpu: 0});
	now += 1000;
	log.write('hint', {seq: flood});
	log.write('exit', {status: 0});
	log.close();
	const events = readEventLog(file);
	const hints = events.filter((e) => e.event === 'hint');
	const summaries = events.filter((e) => e.event === 'suppressed');
	const left = summaries.reduce((sum, e) => sum + Number((e['lines'] as Record<string, number>)['hint'] ?? 0), 0);
	t.ok(hints.length <= logBudget.burst + 2 * logBudget.perSecond + 1, `at most the burst and a second's refill written (${hints.length})`);
	t.equal(hints.length + left, flood + 1, 'every hint line written or counted in a summary');
	t.ok(summaries.length >= 1 && summaries.length <= 3, `summarised at most once a second (${summaries.length})`);
	t.ok(
		events.some((e) => e.event === 'pin'),
		'another kind is not silenced by the flood',
	);
	t.same([events[0]?.event, events.at(-1)?.event], ['start', 'exit'], 'start and exit written, exit last');
	t.ok(fs.statSync(file).size < 200_000, `the file stays small (${fs.statSync(file).size} bytes for ${flood} events)`);
});

t.test('PVRUN_LOG_RATE sets the budget: a positive integer, or unlimited (0); anything else the default', async (t) => {
	t.equal(logRateFromEnv(undefined), logBudget.perSecond);
	t.equal(logRateFromEnv('2000'), 2000);
	t.equal(logRateFromEnv('unlimited'), Infinity);
	t.equal(logRateFromEnv('0'), Infinity);
	for (const bad of ['-5', '1.5', 'lots', '']) t.equal(logRateFromEnv(bad), logBudget.perSecond, `"${bad}"`);
	const file = path.join(tempDir(t), 'events.jsonl');
	const log = new EventLog(file, false, {now: () => 0, perSecond: Infinity});
	for (let i = 0; i < 5000; i++) log.write('hint', {seq: i});
	log.close();
	t.equal(readEventLog(file).length, 5000, 'unlimited: every line written in the same instant');
});

t.test('a file that reaches its size limit is rotated once: FILE.1 holds the lines before', async (t) => {
	const file = path.join(tempDir(t), 'events.jsonl');
	fs.writeFileSync(file, `${'x'.repeat(100)}\n`); // an older run's line: it counts toward the size
	const log = new EventLog(file, false, {maxBytes: 1000, perSecond: Infinity, vm: 'pvrun-1-a'});
	for (let i = 0; i < 40; i++) log.write('pin', {vcpu: 1, pcpu: i});
	log.close();
	const now = fs.readFileSync(file, 'utf8');
	const before = fs.readFileSync(`${file}.1`, 'utf8');
	t.ok(now.length <= 1000 && before.length <= 1000, `neither file is over the limit (${now.length} and ${before.length} bytes)`);
	const first = JSON.parse(now.split('\n')[0] ?? '{}') as LoggedEvent;
	t.match(first, {event: 'log-rotated', previous: `${file}.1`, maxBytes: 1000}, 'the new file starts by naming the old one');
	const pcpus = [...before.split('\n'), ...now.split('\n')].filter((l) => l.includes('"pin"')).map((l) => (JSON.parse(l) as {pcpu: number}).pcpu);
	t.same(
		pcpus,
		pcpus.slice().sort((a, b) => a - b),
		'the lines in order across the two files',
	);
	t.equal(pcpus.at(-1), 39, 'the last line written is in FILE');
	t.ok(pcpus.length < 40, `the oldest lines went with the second rotation (${pcpus.length} of 40 kept)`);
	t.notOk(fs.existsSync(`${file}.2`), 'one older file at most');
});

t.test('a log that is not a regular file is never rotated', async (t) => {
	const log = new EventLog('/dev/null', false, {maxBytes: 10, perSecond: Infinity});
	for (let i = 0; i < 5; i++) log.write('pin', {vcpu: 1});
	log.close();
	t.notOk(fs.existsSync('/dev/null.1'), 'no /dev/null.1');
});

t.test('levels: errors, warnings, debug lines; info otherwise', async (t) => {
	t.equal(levelOf('internal-error'), 'error');
	t.equal(levelOf('pin-error'), 'error');
	t.equal(levelOf('warning'), 'warn');
	t.equal(levelOf('stall'), 'warn');
	t.equal(levelOf('hint'), 'debug');
	t.equal(levelOf('pin'), 'info');
	t.equal(eventLogVersion, 1);
});

/** The event names pvrun's sources write (literal first arguments of write/say/hintLine). */
function eventsInSources(): Set<string> {
	const names = new Set<string>();
	const walk = (dir: string): void => {
		for (const e of fs.readdirSync(dir, {withFileTypes: true})) {
			const p = path.join(dir, e.name);
			if (e.isDirectory()) walk(p);
			else if (p.endsWith('.ts'))
				for (const m of fs.readFileSync(p, 'utf8').matchAll(/(?:log\??\.(?:write|say)|hintLine|writeLine)\(\s*'([a-z-]+)'/g)) if (m[1]) names.add(m[1]);
		}
	};
	walk(path.join(packageRoot, 'src'));
	return names;
}

t.test('the schema and the docs name every event the sources write, and nothing else', async (t) => {
	const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'docs', 'event-log.schema.json'), 'utf8')) as {
		properties: {event: {enum: string[]}};
	};
	const inSchema = new Set(schema.properties.event.enum);
	const written = eventsInSources();
	t.ok(written.size >= 20, `the sources write ${written.size} kinds of event`);
	t.same(
		[...written].filter((e) => !inSchema.has(e)),
		[],
		'every event written is in the schema',
	);
	t.same(
		[...inSchema].filter((e) => !written.has(e)),
		[],
		'every event in the schema is written somewhere',
	);
	const doc = fs.readFileSync(path.join(packageRoot, 'docs', 'event-log.md'), 'utf8');
	t.same(
		[...inSchema].filter((e) => !doc.includes(`| \`${e}\` |`)),
		[],
		'docs/event-log.md has a row for each',
	);
});

t.test('lines as the EventLog writes them validate against the schema; bad ones do not', async (t) => {
	const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'docs', 'event-log.schema.json'), 'utf8')) as object;
	const validate = new Ajv({allErrors: true, strict: false}).compile(schema);
	const file = path.join(tempDir(t), 'events.jsonl');
	const log = new EventLog(file, false, {vm: 'pvrun-7-beef', perSecond: Infinity});
	log.write('pin', {vcpu: 1, pcpu: 3, tid: 120, comm: 'x', seq: 4, shared: false});
	log.warn('odd');
	log.close();
	for (const e of readEventLog(file)) t.ok(validate(e), `${e.event}: ${JSON.stringify(validate.errors ?? [])}`);
	const good = readEventLog(file)[0] ?? {event: ''};
	for (const [what, bad] of [
		['no VM id', {...good, vm: undefined}],
		['another version', {...good, v: 2}],
		['an unknown event', {...good, event: 'nonsense'}],
		['a pin without its CPU', {...good, pcpu: undefined}],
		['a level that is none', {...good, level: 'loud'}],
	] as const)
		t.notOk(validate(JSON.parse(JSON.stringify(bad))), `refused: ${what}`);
});
