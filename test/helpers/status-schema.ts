// `pvrun status --json` output checked against docs/status.schema.json.
import fs from 'node:fs';
import path from 'node:path';
import {Ajv} from 'ajv';
import type {Test} from 'tap';
import {packageRoot} from '../../src/util/paths.js';

const schema = JSON.parse(fs.readFileSync(path.join(packageRoot, 'docs', 'status.schema.json'), 'utf8')) as object;
const validate = new Ajv({allErrors: true, strict: false}).compile(schema);

/** `text` (status --json's stdout) is valid against the schema: one assertion naming the first failures. */
export function assertStatusValid(t: Pick<Test, 'same'>, text: string): void {
	const value: unknown = JSON.parse(text);
	const ok = validate(value);
	t.same(ok ? [] : (validate.errors ?? []).slice(0, 3).map((e) => `${e.instancePath} ${e.message ?? ''}`), [], 'valid against docs/status.schema.json');
}
