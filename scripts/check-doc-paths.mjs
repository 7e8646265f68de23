// Every file path the documentation names (src/…, test/…, native/…, bpf/…,
// guest-agent/…, scripts/…, bench/… ending in a source extension) must exist:
// a moved or renamed file fails `make lint` until the docs follow it.
// `name` (src/hints/name/, bpf/name.h) is the how-to's placeholder for a new hint type.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath} from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const docs = [
	'README.md',
	'CONTRIBUTING.md',
	...fs
		.readdirSync(path.join(root, 'docs'))
		.filter((f) => f.endsWith('.md'))
		.map((f) => `docs/${f}`),
];
const pattern = /\b(?:src|test|native|bpf|guest-agent|scripts|bench)\/[\w./-]+\.(?:ts|c|h|sh|mjs|json)\b/g;
const placeholder = /\/name[./]/;
let missing = 0;
for (const doc of docs) {
	const text = fs.readFileSync(path.join(root, doc), 'utf8');
	for (const [n, line] of text.split('\n').entries())
		for (const [ref] of line.matchAll(pattern))
			if (!placeholder.test(ref) && !fs.existsSync(path.join(root, ref))) {
				process.stderr.write(`${doc}:${n + 1}: ${ref} does not exist\n`);
				missing++;
			}
}
if (missing) process.exit(1);
