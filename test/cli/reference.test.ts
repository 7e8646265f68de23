// The table --help, pvrun(1) and the completion are made from agrees with what pvrun parses:
// every --pv- option's values, and every option of pvrun's commands (yargs).
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';
import {parsePvOptions, pvOptionNames} from '../../src/cli/pv-options.js';
import {commandDocs, optionHelpLine, pvOptionDocs, valueOptionNames} from '../../src/cli/reference.js';
import {pvrunCommand} from '../../src/guest/boot.js';
import {UsageError} from '../../src/util/errors.js';

const [node = 'node', ...cli] = pvrunCommand();

/** A value each value option accepts. */
const sample: Record<string, string> = {
	'--pv-cpus': '0',
	'--pv-log': '/tmp/x.jsonl',
	'--pv-qemu': 'qemu-system-x86_64',
	'--pv-agent-wait': '30',
	'--pv-cs-boost': 'max=500us',
	'--pv-guest-cpu': '5',
	'--pv-share': '2',
	'--pv-metrics': '/tmp/x.prom',
	'--pv-hint-script': path.join(packageRoot, 'docs', 'examples', 'hint-scripts', 'pin-by-name.bt'),
};

t.test('every option in the table parses, with each of its values; a value outside them is a usage error', async (t) => {
	t.same(
		pvOptionNames,
		pvOptionDocs.map((o) => o.name),
		'the parser knows exactly the options in the table',
	);
	for (const o of pvOptionDocs) {
		if (o.arg === undefined) {
			t.doesNotThrow(() => parsePvOptions([o.name]), `${o.name} alone`);
			continue;
		}
		t.ok(valueOptionNames.has(o.name), `${o.name} takes a value`);
		for (const v of o.choices ?? [sample[o.name] ?? '']) t.doesNotThrow(() => parsePvOptions([o.name, v]), `${o.name} ${v}`);
		if (o.choices) t.throws(() => parsePvOptions([o.name, 'nonsense']), UsageError, `${o.name} nonsense: refused`);
	}
});

t.test("--help's lines come from the table", async (t) => {
	const help = (await execa(node, [...cli, '--help'])).stdout.split('\n');
	for (const o of pvOptionDocs) t.equal(help.includes(optionHelpLine(o)), !o.manOnly, `${o.name}'s line${o.manOnly ? ': in the manual page only' : ''}`);
});

t.test("each command's words in the table are the options its --help lists", async (t) => {
	for (const c of commandDocs) {
		const r = await execa(node, [...cli, c.name, '--help'], {reject: false});
		t.equal(r.exitCode, 0, `pvrun ${c.name} --help: ${r.stderr}`);
		// An option's own line starts within 6 spaces; a wrapped description's, further in.
		const listed = [...r.stdout.matchAll(/^ {2,6}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1] ?? '').filter((o) => o !== '--version');
		const offered = c.words.filter((w) => w.startsWith('--'));
		t.same([...listed].sort(), [...offered].sort(), `pvrun ${c.name}: completion offers the options it takes`);
	}
});
