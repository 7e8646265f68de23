// A real VM's event log checked against docs/event-log.schema.json.
import fs from 'node:fs';
import path from 'node:path';
import {Ajv} from 'ajv';
import type {Test} from 'tap';
import {packageRoot} from '../../src/util/paths.js';
import {readEventLog} from '../../src/vm/event-log.js';

const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'docs', 'event-log.schema.json'), 'utf8')) as object;
const validate = new Ajv({allErrors: true, strict: false}).compile(schema);

/** Every line of `file` is valid against the schema, and all carry the same VM id (one assertion; the first few failures named). */
export function assertLogValid(t: Test, file: string): void {
	const events = readEventLog(file);
	const bad: string[] = [];
	for (const e of events) {
		const name = e.event;
		if (!validate(e)) bad.push(`${name}: ${JSON.stringify(validate.errors?.slice(0, 2))}`);
	}
	const vms = new Set(events.map((e) => e['vm']));
	t.ok(
		events.length > 0 && bad.length === 0 && vms.size === 1,
		`all ${events.length} lines of the event log are valid against docs/event-log.schema.json, with one VM id (${[...vms].join(', ')})${bad.length ? `; invalid: ${bad.slice(0, 3).join(' | ')}` : ''}`,
	);
}
