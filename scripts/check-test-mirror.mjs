// Each module with logic in src/ has its test at the same path under test/
// (src/a/b.ts -> test/a/b.test.ts). A module without one must hold no logic:
// no function, arrow function or class outside comments (types, interfaces and
// constant data only), or be one of the entry points below.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath} from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
/** Entry points: one call into a module that has its own test. */
const entryPoints = new Set(['src/cli/main.ts', 'src/vm/daemon-entry.ts', 'src/vm/helper-entry.ts']);
const logic = /\bfunction\b|=>|\bclass\b/;

function* sources(dir) {
	for (const entry of fs.readdirSync(path.join(root, dir), {withFileTypes: true})) {
		const rel = `${dir}/${entry.name}`;
		if (entry.isDirectory()) yield* sources(rel);
		else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield rel;
	}
}

const withoutComments = (text) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
let missing = 0;
for (const file of sources('src')) {
	const test = file.replace(/^src\//, 'test/').replace(/\.ts$/, '.test.ts');
	if (fs.existsSync(path.join(root, test)) || entryPoints.has(file)) continue;
	if (logic.test(withoutComments(fs.readFileSync(path.join(root, file), 'utf8')))) {
		process.stderr.write(`${file} has logic but no ${test}\n`);
		missing++;
	}
}
if (missing) process.exit(1);
