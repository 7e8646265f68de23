import {execFileSync} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
	appendKnownHost,
	blobType,
	defaultKnownHosts,
	fingerprint,
	keysFor,
	knownHostsName,
	knownTypes,
	patternListMatches,
	readKnownHosts,
	verifyHostKey,
} from '../../src/remote/known-hosts.js';
import {packageRoot} from '../../src/util/paths.js';

const pub = fs.readFileSync(path.join(packageRoot, 'images', 'ssh', 'test-key.pub'), 'utf8').split(' ');
const [type = '', key = ''] = pub;
const other = 'AAAAC3NzaC1lZDI1NTE5AAAAIHXOuTb79s4sYsd3d8mJ7Qn6mAVdfVSBBTCAw4HbMuh1';

t.test('names as ssh writes them: the port only when it is not 22, bracketed', async (t) => {
	t.equal(knownHostsName('example.org', 22), 'example.org');
	t.equal(knownHostsName('127.0.0.1', 2222), '[127.0.0.1]:2222');
	t.match(defaultKnownHosts('/home/u'), '/home/u/.ssh/known_hosts');
});

t.test('patterns: lists, wildcards, negation, case', async (t) => {
	t.ok(patternListMatches('a.example.org,b.example.org', 'b.example.org'));
	t.ok(patternListMatches('*.example.org', 'A.Example.ORG'));
	t.ok(patternListMatches('host?', 'host1'));
	t.notOk(patternListMatches('host?', 'host12'));
	t.notOk(patternListMatches('*.example.org,!bad.example.org', 'bad.example.org'), 'a negation wins');
	t.notOk(patternListMatches('[127.0.0.1]:2222', '[127.0.0.1]:2223'), 'brackets are literal, the port counts');
	t.ok(patternListMatches('[127.0.0.1]:2222', '[127.0.0.1]:2222'));
});

t.test("hashed names (HashKnownHosts): HMAC-SHA1 of the name under the line's salt", async (t) => {
	const salt = crypto.randomBytes(20);
	const hash = crypto.createHmac('sha1', salt).update('[127.0.0.1]:2222').digest('base64');
	const line = `|1|${salt.toString('base64')}|${hash} ${type} ${key}\n`;
	t.equal(verifyHostKey(line, '[127.0.0.1]:2222', type, key).verdict, 'known');
	t.equal(verifyHostKey(line, '[127.0.0.1]:2223', type, key).verdict, 'unknown');
	t.equal(verifyHostKey('|1|garbage bad\n', 'x', type, key).verdict, 'unknown', 'a malformed line is no match');
});

t.test('verdicts: known, unknown, changed, revoked; comments and certificate authorities skipped', async (t) => {
	const text = [
		'# comment',
		'',
		`@cert-authority *.example.org ${type} ${other}`,
		`a.example.org ${type} ${key} me@there`,
		`b.example.org ${type} ${other}`,
		`@revoked * ${type} ${'AAAArevoked'}`,
	].join('\n');
	t.same(verifyHostKey(text, 'a.example.org', type, key), {verdict: 'known', line: 4});
	t.same(verifyHostKey(text, 'b.example.org', type, key), {verdict: 'changed', lines: [5]});
	t.same(verifyHostKey(text, 'c.example.org', type, key), {verdict: 'unknown'}, 'a CA line gives no host key');
	t.same(verifyHostKey(text, 'a.example.org', type, 'AAAArevoked'), {verdict: 'revoked', line: 6});
	t.same(knownTypes(text, 'a.example.org'), [type]);
	t.same(
		keysFor(text, 'zzz').map((k) => k.revoked),
		[true],
		'only the revoked key matches every name',
	);
	t.same(verifyHostKey(`a.example.org ssh-rsa ${other}\n`, 'a.example.org', type, key).verdict, 'changed', 'another type known for the host: changed too');
});

t.test('a new key is appended as ssh would: ~/.ssh made 0700, the file 0600, after a last line without a newline', async (t) => {
	const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-kh-'));
	t.teardown(() => fs.rmSync(home, {recursive: true, force: true}));
	const file = defaultKnownHosts(home);
	t.equal(readKnownHosts(file), '', 'a missing file is empty');
	appendKnownHost(file, '[127.0.0.1]:2222', type, key);
	t.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
	t.equal(fs.statSync(file).mode & 0o777, 0o600);
	fs.appendFileSync(file, `x ${type} ${other}`);
	appendKnownHost(file, 'y', type, key);
	t.equal(readKnownHosts(file), `[127.0.0.1]:2222 ${type} ${key}\nx ${type} ${other}\ny ${type} ${key}\n`);
	t.equal(verifyHostKey(readKnownHosts(file), '[127.0.0.1]:2222', type, key).verdict, 'known');
});

t.test("a key blob's type and fingerprint, as ssh-keygen shows them", async (t) => {
	const blob = Buffer.from(key, 'base64');
	t.equal(blobType(blob), 'ssh-ed25519');
	t.equal(blobType(Buffer.from([0, 0, 0, 200, 1])), undefined, 'a length beyond the blob');
	t.equal(blobType(Buffer.from([0, 0, 0, 2, 0x41, 0x0a])), undefined, 'not a type name');
	const keygen = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(packageRoot, 'images', 'ssh', 'test-key.pub')], {encoding: 'utf8'});
	t.equal(fingerprint(blob), keygen.split(' ')[1]);
});
