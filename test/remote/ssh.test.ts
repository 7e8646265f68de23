import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {formatTarget, parseTarget, serverHostKeyAlgorithms, SshSession} from '../../src/remote/ssh.js';
import {packageRoot} from '../../src/util/paths.js';

t.test('targets: user@host[:port], the caller by default, IPv6 in brackets', async (t) => {
	t.same(parseTarget('root@127.0.0.1:2222'), {user: 'root', host: '127.0.0.1', port: 2222});
	t.same(parseTarget('guest.example', 'me'), {user: 'me', host: 'guest.example', port: 22});
	t.same(parseTarget('u@[::1]:22'), {user: 'u', host: '::1', port: 22});
	t.equal(formatTarget({user: 'u', host: '::1', port: 2200}), 'u@[::1]:2200');
	t.equal(formatTarget({user: 'root', host: 'h', port: 22}), 'root@h');
	for (const bad of ['', 'root@', 'a b', 'root@host:0', 'root@host:70000', 'root@host:x', 'a@b@c'])
		t.throws(() => parseTarget(bad), {name: 'UsageError', message: /bad SSH target/}, JSON.stringify(bad));
});

t.test('the host-key algorithms that show a known key: RSA signs with SHA-2 as well', async (t) => {
	t.same(serverHostKeyAlgorithms(['ssh-ed25519', 'ssh-rsa']), ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
});

t.test('nobody listening: one line naming the target', async (t) => {
	const port = await new Promise<number>((resolve) => {
		const s = net.createServer().listen(0, '127.0.0.1', () => {
			const a = s.address();
			s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
		});
	});
	const knownHosts = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-ssh-')), 'kh');
	t.teardown(() => fs.rmSync(path.dirname(knownHosts), {recursive: true, force: true}));
	await t.rejects(
		SshSession.connect({user: 'root', host: '127.0.0.1', port}, {knownHosts, identities: [path.join(packageRoot, 'images', 'ssh', 'test-key')], agent: ''}),
		{
			name: 'SshError',
			message: `root@127.0.0.1:${port}: connection refused (is an SSH server listening there?)`,
		},
	);
});

t.test('a server that never speaks SSH: a bounded wait, one line', async (t) => {
	const server = net.createServer(() => {}).listen(0, '127.0.0.1');
	await new Promise((resolve) => server.once('listening', resolve));
	t.teardown(() => server.close());
	const a = server.address();
	const port = typeof a === 'object' && a ? a.port : 0;
	const knownHosts = path.join(os.tmpdir(), 'pvrun-no-such-known-hosts');
	await t.rejects(SshSession.connect({user: 'root', host: '127.0.0.1', port}, {knownHosts, agent: '', connectTimeoutMs: 500}), {
		name: 'SshError',
		message: `root@127.0.0.1:${port}: no SSH answer within 1 s`,
	});
});

t.test('a key file that cannot be read or parsed is a usage error naming it', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-ssh-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	const junk = path.join(dir, 'junk');
	fs.writeFileSync(junk, 'not a key');
	const target = {user: 'root', host: '127.0.0.1', port: 9};
	await t.rejects(SshSession.connect(target, {knownHosts: path.join(dir, 'kh'), identities: [path.join(dir, 'none')]}), {
		name: 'UsageError',
		message: /cannot read key file .*none: ENOENT/,
	});
	await t.rejects(SshSession.connect(target, {knownHosts: path.join(dir, 'kh'), identities: [junk]}), {name: 'UsageError', message: /key file .*junk: /});
});
