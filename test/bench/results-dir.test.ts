import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {defaultResultsDir} from '../../src/bench/results-dir.js';

t.test('a second run on the same day gets a new folder; another benchmark shares the first', async (t) => {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-results-test-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	const date = '2026-12-02T05:00:00.000Z';
	const first = defaultResultsDir('matrix.json', date, '', root, 'host');
	t.equal(first, path.join(root, '2026-12-02-host'));
	fs.mkdirSync(first);
	fs.writeFileSync(path.join(first, 'matrix.json'), '{}');
	t.equal(defaultResultsDir('hint-latency.json', date, '', root, 'host'), first, 'make bench: the hint latency goes beside the matrix');
	const second = defaultResultsDir('matrix.json', date, '', root, 'host');
	t.equal(second, path.join(root, '2026-12-02-host-2'), 'the first run is kept');
	fs.mkdirSync(second);
	fs.writeFileSync(path.join(second, 'matrix.json'), '{}');
	t.equal(defaultResultsDir('matrix.json', date, '', root, 'host'), path.join(root, '2026-12-02-host-3'));
	t.equal(defaultResultsDir('matrix.json', date, '-quick', root, 'host'), path.join(root, '2026-12-02-host-quick'), 'the quick run has its own name');
	t.equal(fs.readFileSync(path.join(first, 'matrix.json'), 'utf8'), '{}', 'nothing written');
});

t.test('by default, under the working directory: bench/results/<date>-<host>, an absolute path', async (t) => {
	const cwd = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-results-cwd-')));
	const before = process.cwd();
	t.teardown(() => {
		process.chdir(before);
		fs.rmSync(cwd, {recursive: true, force: true});
	});
	process.chdir(cwd);
	const dir = defaultResultsDir('matrix.json', '2026-12-05T05:00:00.000Z');
	t.equal(dir, path.join(cwd, 'bench', 'results', `2026-12-05-${os.hostname()}`));
	t.ok(path.isAbsolute(dir), 'absolute');
});
