// Where pvrun finds its own files and keeps its cache.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {cacheRoot, packageRoot} from '../../src/util/paths.js';

t.test('packageRoot is the folder of pvrun package.json, from src/ as from dist/', async (t) => {
	const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {name?: string};
	t.equal(pkg.name, 'pvrun');
	t.ok(fs.existsSync(path.join(packageRoot, 'src', 'util', 'paths.ts')), 'src/ is below it');
});

t.test('cacheRoot: $XDG_CACHE_HOME/pvrun when it is an absolute path, else ~/.cache/pvrun', async (t) => {
	t.equal(cacheRoot({XDG_CACHE_HOME: '/var/cache/me'}), '/var/cache/me/pvrun');
	const home = path.join(os.homedir(), '.cache', 'pvrun');
	t.equal(cacheRoot({}), home, 'unset');
	t.equal(cacheRoot({XDG_CACHE_HOME: ''}), home, 'empty (the XDG spec: as if unset)');
	t.equal(cacheRoot({XDG_CACHE_HOME: 'relative/cache'}), home, 'relative (the XDG spec: ignored)');
});
