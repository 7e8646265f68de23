import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {listDir, readCpuListFile, readText} from '../../src/host/sysfs.js';

t.test('what is not there reads as nothing; CPU lists as the kernel writes them', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-sysfs-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const file = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
	t.equal(readText(path.join(dir, 'missing')), undefined);
	t.same(listDir(path.join(dir, 'missing')), []);
	t.same(listDir(dir), []);
	t.same(readCpuListFile(file('online', '0-3,6\n')), [0, 1, 2, 3, 6]);
	t.same(readCpuListFile(file('nohz_full', '(null)\n')), [], 'nohz_full with none');
	t.same(readCpuListFile(file('isolated', '\n')), [], 'isolated with none');
	t.same(readCpuListFile(file('bad', '3-1\n')), [], 'a malformed list');
	t.same(listDir(dir).sort(), ['bad', 'isolated', 'nohz_full', 'online']);
});
