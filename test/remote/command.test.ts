// `pvrun agent` through the real command line: usage errors exit 2, an unreachable guest 1.
import {execFile} from 'node:child_process';
import {promisify} from 'node:util';
import t from 'tap';
import {pvrunCommand} from '../../src/guest/boot.js';

const run = promisify(execFile);

async function pvrun(...args: string[]): Promise<{code: number; err: string}> {
	const [cmd = '', ...rest] = pvrunCommand(...args);
	try {
		await run(cmd, rest, {timeout: 30_000});
		return {code: 0, err: ''};
	} catch (error) {
		const e = error as {code?: number; stderr?: string};
		return {code: e.code ?? -1, err: e.stderr ?? ''};
	}
}

t.test('usage errors exit 2 with one line', async (t) => {
	const verb = await pvrun('agent', 'reinstall', 'root@h');
	t.equal(verb.code, 2);
	t.match(verb.err, /Invalid values:[\s\S]*Argument: action, Given: "reinstall", Choices: "install", "uninstall", "status"/);
	const target = await pvrun('agent', 'install', 'root@h:99999');
	t.equal(target.code, 2);
	t.equal(target.err, 'pvrun: bad SSH target "root@h:99999": port 99999 is out of range\n');
});

t.test('a guest nobody answers for: exit 1, one line', async (t) => {
	const r = await pvrun('agent', 'status', 'root@127.0.0.1:9', '--known-hosts', '/nonexistent/kh', '-i', '/dev/null');
	t.equal(r.code, 2, 'an empty key file is a usage error');
	t.match(r.err, /^pvrun: key file \/dev\/null: /);
	const refused = await pvrun('agent', 'status', 'root@127.0.0.1:9', '--known-hosts', '/nonexistent/kh');
	t.equal(refused.code, 1);
	t.equal(refused.err, 'pvrun: root@127.0.0.1:9: connection refused (is an SSH server listening there?)\n');
});
