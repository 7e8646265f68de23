// Where a benchmark writes its results when the user did not say (a folder
// named by date and host, never one that already holds the same results), and
// the commit the results name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import {packageRoot} from '../util/paths.js';

/**
 * The default results folder for `file` (`matrix.json`, `hint-latency.json`):
 * `<root>/<date>-<host><suffix>`, root `bench/results` under the working
 * directory (in pvrun's checkout, as `make bench` runs it, the repository's
 * bench/results), or the same name with `-2`, `-3`, ... when
 * that folder already holds `file` — a second run on the same day used to
 * overwrite the first. Two benchmarks of one `make bench` (different files)
 * still share a folder. `date` is an ISO timestamp.
 */
export function defaultResultsDir(file: string, date: string, suffix = '', root = path.resolve('bench', 'results'), host = os.hostname()): string {
	const base = path.join(root, `${date.slice(0, 10)}-${host}${suffix}`);
	for (let n = 1; ; n++) {
		const dir = n === 1 ? base : `${base}-${n}`;
		if (!fs.existsSync(path.join(dir, file))) return dir;
	}
}

/**
 * The commit of pvrun's checkout, for results to say what they measured (''
 * outside a git checkout), with "-dirty" when the code differs from it. Taken
 * when a benchmark starts: a commit made while it runs is not what ran.
 */
export async function gitCommit(): Promise<string> {
	const commit = await execa('git', ['rev-parse', '--short', 'HEAD'], {cwd: packageRoot, reject: false});
	if (commit.exitCode !== 0) return '';
	const dirty = await execa('git', ['status', '--porcelain', '--', 'src', 'native', 'bpf', 'guest-agent', 'images'], {cwd: packageRoot, reject: false});
	return `${String(commit.stdout).trim()}${String(dirty.stdout).trim() ? '-dirty' : ''}`;
}
