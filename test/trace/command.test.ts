// `pvrun trace` as yargs parses it (its options, bpftrace's after --) and what it does before
// bpftrace runs: the list without a name, and a usage error (exit 2) for what it cannot take.
// Against a real VM: test/e2e/trace.test.ts.
import {PassThrough} from 'node:stream';
import t from 'tap';
import yargs from 'yargs';
import {trace, traceArgs, traceCommand, traceDuration, type TraceArgs} from '../../src/trace/command.js';
import {UsageError} from '../../src/util/errors.js';

/** The arguments the command's handler would get for `argv`, parsed as pvrun's commands are. */
async function parsed(argv: string[]): Promise<TraceArgs> {
	let got: TraceArgs | undefined;
	await yargs(argv)
		.command({
			...traceCommand,
			// As the command's own handler does, at once.
			handler: (args) => {
				got = traceArgs(args);
			},
		})
		.parserConfiguration({'duplicate-arguments-array': false})
		.strict()
		.fail((message: string | null, error: Error | undefined) => {
			throw error ?? new UsageError(message ?? '');
		})
		.parseAsync();
	if (!got) throw new Error('the handler did not run');
	return got;
}

t.test('its options: the script, --vm, --all, --duration, and bpftrace options after --', async (t) => {
	t.same(await parsed(['trace']), {all: false});
	t.same(await parsed(['trace', 'runqlat', '--vm', 'web', '--duration', '3']), {name: 'runqlat', vm: 'web', duration: 3, all: false});
	t.same(await parsed(['trace', 'preempt', '--all', '--', '-f', 'json']), {name: 'preempt', all: true, '--': ['-f', 'json']});
	await t.rejects(parsed(['trace', 'runqlat', '--vm']), /Not enough arguments following: vm/, '--vm needs its value');
	await t.rejects(parsed(['trace', 'runqlat', '--seconds', '3']), /Unknown argument: seconds/, 'an option it does not take');
});

t.test('--duration: seconds above 0, at most a day', async (t) => {
	t.equal(traceDuration(undefined), undefined);
	t.equal(traceDuration(0.5), 0.5);
	t.equal(traceDuration(86_400), 86_400);
	for (const bad of [0, -1, Number.NaN, 86_401]) t.throws(() => traceDuration(bad), UsageError, String(bad));
});

t.test('without a name: the scripts, each with what it measures', async (t) => {
	const out = new PassThrough();
	let text = '';
	out.on('data', (d: Buffer) => (text += d.toString()));
	await trace({all: false}, out);
	const lines = text.split('\n');
	t.match(lines[0], /^hint-delay {2}from a re-pin of a vCPU thread/);
	t.match(lines[1], /^preempt {5}vCPU preemptions/);
	t.match(lines[2], /^runqlat {5}run-queue latency/);
	t.match(text, /pvrun trace NAME \[--vm VM\] \[--duration SECONDS\]/);
	await t.rejects(trace({all: false, vm: 'web'}), new UsageError("--vm: only with a script's name (pvrun trace lists them)"));
	await t.rejects(trace({all: false, duration: 3, '--': ['-q']}), new UsageError("--duration, --: only with a script's name (pvrun trace lists them)"));
});

t.test('usage errors come before anything is looked up', async (t) => {
	await t.rejects(trace({name: 'nosuch', all: false}), UsageError, 'an unknown script');
	await t.rejects(trace({name: 'runqlat', all: false, duration: 0}), UsageError, 'a duration of 0');
});
