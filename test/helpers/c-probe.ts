// The tests that hold a TypeScript mirror of a C header against the header:
// compile a small C program against it, run it, and read what it prints, one
// `key value` line each (constants, sizes, offsets, encoded bytes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import type {Test} from 'tap';
import {packageRoot} from '../../src/util/paths.js';

/**
 * Compile `source` (with the project's C flags) against the headers in
 * `include` (a folder of the package, or several), run it with `args`, and return its
 * lines as key (up to the first space) → the rest of the line.
 */
export async function cProbe(t: Pick<Test, 'teardown'>, source: string, include: string | string[], args: string[] = []): Promise<Map<string, string>> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-c-probe-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	fs.writeFileSync(path.join(dir, 'probe.c'), source);
	await execa('cc', [
		'-std=c11',
		'-Wall',
		'-Wextra',
		'-Werror',
		...[include].flat().flatMap((dir) => ['-I', path.join(packageRoot, dir)]),
		'-o',
		path.join(dir, 'probe'),
		path.join(dir, 'probe.c'),
	]);
	const {stdout} = await execa(path.join(dir, 'probe'), args);
	return new Map(stdout.split('\n').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)] as const));
}

/** cProbe for a probe that prints numbers only. */
export async function cProbeNumbers(t: Pick<Test, 'teardown'>, source: string, include: string): Promise<Map<string, number>> {
	return new Map([...(await cProbe(t, source, include))].map(([k, v]) => [k, Number(v)] as const));
}
