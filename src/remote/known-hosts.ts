// OpenSSH's known_hosts, as `ssh` reads it: which keys a host may present. Lines are
// `[@marker] patterns keytype base64 [comment]`; patterns are names, `[name]:port` for
// ports other than 22, wildcards (* ?), negations (!pattern) and hashed names
// (|1|salt|HMAC-SHA1). A host whose name matches lines with other keys is a changed key:
// refused, as ssh refuses it. A @revoked key is refused wherever it appears.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface KnownKey {
	/** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ... */
	type: string;
	/** The key blob (SSH wire format), base64 as in the file. */
	key: string;
	revoked: boolean;
	/** 1-based line number, for messages. */
	line: number;
}

export type HostKeyVerdict =
	{verdict: 'known'; line: number} | {verdict: 'unknown'} | {verdict: 'changed'; lines: number[]} | {verdict: 'revoked'; line: number};

/** The default file: ~/.ssh/known_hosts. */
export function defaultKnownHosts(home: string = os.homedir()): string {
	return path.join(home, '.ssh', 'known_hosts');
}

/** The name a host goes by in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
	return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether one (non-negated) pattern matches a name: hashed, or with * and ? wildcards, case-insensitive. */
export function patternMatches(pattern: string, name: string): boolean {
	if (pattern.startsWith('|1|')) {
		const [, , salt, hash] = pattern.split('|');
		if (!salt || !hash) return false;
		const mac = crypto.createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
		return mac === hash;
	}
	const re = new RegExp(
		`^${pattern
			.replace(/[.+^${}()|[\]\\]/g, '\\$&')
			.replace(/\*/g, '.*')
			.replace(/\?/g, '.')}$`,
		'i',
	);
	return re.test(name);
}

/** Whether a comma-separated pattern list matches: some pattern does, and no negated one. */
export function patternListMatches(list: string, name: string): boolean {
	let matched = false;
	for (const p of list.split(',')) {
		if (p.startsWith('!')) {
			if (patternMatches(p.slice(1), name)) return false;
		} else if (patternMatches(p, name)) matched = true;
	}
	return matched;
}

/** The keys known_hosts text lists for `name` (certificate authorities left out: pvrun does not take certificates). */
export function keysFor(text: string, name: string): KnownKey[] {
	const out: KnownKey[] = [];
	text.split('\n').forEach((raw, i) => {
		const line = raw.trim();
		if (!line || line.startsWith('#')) return;
		const words = line.split(/\s+/);
		let marker: string | undefined;
		if (words[0]?.startsWith('@')) marker = words.shift();
		const [patterns, type, key] = words;
		if (!patterns || !type || !key || marker === '@cert-authority') return;
		if (!patternListMatches(patterns, name)) return;
		out.push({type, key, revoked: marker === '@revoked', line: i + 1});
	});
	return out;
}

/** Whether a presented key (its type and base64 blob) is known for `name` in the text. */
export function verifyHostKey(text: string, name: string, type: string, key: string): HostKeyVerdict {
	const keys = keysFor(text, name);
	const revoked = parseRevoked(text).find((k) => k.key === key);
	if (revoked) return {verdict: 'revoked', line: revoked.line};
	const same = keys.find((k) => !k.revoked && k.key === key && k.type === type);
	if (same) return {verdict: 'known', line: same.line};
	const others = keys.filter((k) => !k.revoked);
	return others.length ? {verdict: 'changed', lines: others.map((k) => k.line)} : {verdict: 'unknown'};
}

/** The key types known for `name`: the host-key algorithms to ask the server for, so that it shows a key we can check. */
export function knownTypes(text: string, name: string): string[] {
	return [
		...new Set(
			keysFor(text, name)
				.filter((k) => !k.revoked)
				.map((k) => k.type),
		),
	];
}

function parseRevoked(text: string): KnownKey[] {
	const out: KnownKey[] = [];
	text.split('\n').forEach((raw, i) => {
		const words = raw.trim().split(/\s+/);
		if (words[0] === '@revoked' && words[2] && words[3]) out.push({type: words[2], key: words[3], revoked: true, line: i + 1});
	});
	return out;
}

/** The text of a known_hosts file; empty when it does not exist. */
export function readKnownHosts(file: string): string {
	try {
		return fs.readFileSync(file, 'utf8');
	} catch (error) {
		if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
		throw error;
	}
}

/** Add a line for `name`'s key, making ~/.ssh (0700) and the file (0600) as ssh would. */
export function appendKnownHost(file: string, name: string, type: string, key: string): void {
	fs.mkdirSync(path.dirname(file), {recursive: true, mode: 0o700});
	const text = readKnownHosts(file);
	const sep = text === '' || text.endsWith('\n') ? '' : '\n';
	fs.appendFileSync(file, `${sep}${name} ${type} ${key}\n`, {mode: 0o600});
}

/** The key type named at the start of an SSH key blob (a uint32 length, then the name). */
export function blobType(blob: Buffer): string | undefined {
	if (blob.length < 4) return undefined;
	const n = blob.readUInt32BE(0);
	if (n === 0 || n > 64 || blob.length < 4 + n) return undefined;
	const type = blob.subarray(4, 4 + n).toString('latin1');
	return /^[a-z0-9@.-]+$/.test(type) ? type : undefined;
}

/** OpenSSH's fingerprint of a key blob: SHA256:<base64 without padding>. */
export function fingerprint(blob: Buffer): string {
	return `SHA256:${crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}
