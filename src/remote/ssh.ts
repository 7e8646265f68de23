// An SSH connection to a guest (the ssh2 package), as `ssh` makes one: the target as
// user@host[:port]; keys from -i, else the usual ~/.ssh/id_* files, then ssh-agent
// (SSH_AUTH_SOCK), then a password typed at the terminal; the host key checked against
// known_hosts (a new one taken only when asked, a changed one refused). Commands run
// through the user's shell; a file goes up as a command's standard input, so a guest
// without an SFTP server (dropbear) is served too.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ssh2, {
	type AnyAuthMethod,
	type AuthenticationType,
	type ClientChannel,
	type ConnectConfig,
	type NextAuthHandler,
	type ServerHostKeyAlgorithm,
} from 'ssh2';

// ssh2 is CommonJS: its exports come through the default import.
const {Client, utils} = ssh2;
type Client = InstanceType<typeof Client>;
import {PvrunError, UsageError} from '../util/errors.js';
import {appendKnownHost, blobType, fingerprint, knownHostsName, knownTypes, readKnownHosts, verifyHostKey} from './known-hosts.js';

export interface SshTarget {
	user: string;
	host: string;
	port: number;
}

/** `user@host[:port]`, `host`, `user@[v6addr]:port`; the user defaults to the caller's, as for ssh. */
export function parseTarget(text: string, defaultUser: string = os.userInfo().username): SshTarget {
	const m = /^(?:([^@\s:]+)@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(text);
	if (!m?.[2]) throw new UsageError(`bad SSH target "${text}": expected user@host[:port]`);
	const port = m[3] === undefined ? 22 : Number(m[3]);
	if (port < 1 || port > 65535) throw new UsageError(`bad SSH target "${text}": port ${port} is out of range`);
	return {user: m[1] ?? defaultUser, host: m[2].replace(/^\[|\]$/g, ''), port};
}

export function formatTarget(t: SshTarget): string {
	return `${t.user}@${t.host.includes(':') ? `[${t.host}]` : t.host}${t.port === 22 ? '' : `:${t.port}`}`;
}

export interface SshOptions {
	/** Private key files (-i); without them, the usual ~/.ssh/id_* that exist. */
	identities?: string[];
	/** The ssh-agent socket; SSH_AUTH_SOCK by default, '' for none. */
	agent?: string;
	knownHosts: string;
	/** Take a host key known_hosts does not have (and add it there); a changed one is refused all the same. */
	acceptNewHostKey?: boolean;
	/** Asks for a password or passphrase at the terminal; undefined where there is none (no TTY). */
	prompt?: ((question: string) => Promise<string>) | undefined;
	connectTimeoutMs?: number;
	/** What the host key check found, for the caller to show. */
	onHostKey?: (line: string) => void;
}

export interface RunResult {
	code: number;
	stdout: string;
	stderr: string;
}

/** A failure of the connection itself (unreachable, refused, authentication, host key): exit 1. */
export class SshError extends PvrunError {}

const defaultIdentityNames = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
const maxOutput = 1 << 20;

export class SshSession {
	private constructor(
		private readonly client: Client,
		readonly target: SshTarget,
	) {}

	static async connect(target: SshTarget, options: SshOptions): Promise<SshSession> {
		const where = formatTarget(target);
		const name = knownHostsName(target.host, target.port);
		const known = readKnownHosts(options.knownHosts);
		const types = knownTypes(known, name);
		let hostKeyProblem: string | undefined;
		const methods = authMethods(target.user, options);
		const tried: string[] = [];
		const client = new Client();
		const config: ConnectConfig = {
			host: target.host,
			port: target.port,
			username: target.user,
			readyTimeout: options.connectTimeoutMs ?? 20_000,
			// Ask for the kinds of host key known_hosts has, so the key shown can be checked.
			...(types.length ? {algorithms: {serverHostKey: serverHostKeyAlgorithms(types)}} : {}),
			hostVerifier: (blob: Buffer): boolean => {
				const type = blobType(blob) ?? 'unknown';
				const print = `${type} ${fingerprint(blob)}`;
				const verdict = verifyHostKey(known, name, type, blob.toString('base64'));
				if (verdict.verdict === 'known') {
					options.onHostKey?.(`host key ${print}: known (${options.knownHosts}:${verdict.line})`);
					return true;
				}
				if (verdict.verdict === 'unknown' && options.acceptNewHostKey) {
					appendKnownHost(options.knownHosts, name, type, blob.toString('base64'));
					options.onHostKey?.(`host key ${print}: new, added to ${options.knownHosts}`);
					return true;
				}
				if (verdict.verdict === 'unknown')
					hostKeyProblem = `${where}: host key ${print} is not in ${options.knownHosts}: check it, then accept it with --accept-new-host-key`;
				else if (verdict.verdict === 'revoked') hostKeyProblem = `${where}: host key ${print} is revoked (${options.knownHosts}:${verdict.line}); refused`;
				else
					hostKeyProblem = `${where}: host key ${print} does not match ${options.knownHosts}:${verdict.lines.join(',')}: the host key has CHANGED (another machine, or someone in between); refused — remove the old line if the change is expected`;
				return false;
			},
			authHandler: (_left: AuthenticationType[], _partial: boolean, next: NextAuthHandler) => {
				const nextMethod = (): void => {
					const method = methods.shift();
					if (!method) return (next as unknown as (stop: false) => void)(false);
					tried.push(method.label);
					method.make().then(
						(made) => (made ? next(made) : nextMethod()),
						() => nextMethod(),
					);
				};
				nextMethod();
			},
		};
		await new Promise<void>((resolve, reject) => {
			client
				.once('ready', () => resolve())
				// ssh2 may emit more than one error (a timeout, then the lost connection), and
				// errors after the handshake too: always listened to, the first one counts.
				.on('error', (error: Error & {level?: string; code?: string}) => {
					if (hostKeyProblem) reject(new SshError(hostKeyProblem));
					else if (error.level === 'client-authentication')
						reject(new SshError(`${where}: authentication failed (tried ${tried.join(', ') || 'nothing: no key, agent or terminal for a password'})`));
					else if (error.level === 'client-timeout') reject(new SshError(`${where}: no SSH answer within ${Math.round((config.readyTimeout ?? 0) / 1000)} s`));
					else reject(new SshError(`${where}: ${error.code === 'ECONNREFUSED' ? 'connection refused (is an SSH server listening there?)' : error.message}`));
				})
				.connect(config);
		});
		return new SshSession(client, target);
	}

	/** Run a command through the remote shell; `input` is its standard input. Output is bounded (1 MiB each). */
	async run(command: string, options: {input?: Buffer | string; timeoutMs?: number} = {}): Promise<RunResult> {
		const channel = await new Promise<ClientChannel>((resolve, reject) =>
			this.client.exec(command, (error, stream) => (error ? reject(new SshError(`${formatTarget(this.target)}: ${error.message}`)) : resolve(stream))),
		);
		return new Promise<RunResult>((resolve, reject) => {
			let stdout = '';
			let stderr = '';
			const timer = setTimeout(() => {
				channel.close();
				reject(new SshError(`${formatTarget(this.target)}: a command did not end within ${Math.round((options.timeoutMs ?? 60_000) / 1000)} s`));
			}, options.timeoutMs ?? 60_000);
			channel.on('data', (d: Buffer) => {
				if (stdout.length < maxOutput) stdout += d.toString('utf8');
			});
			channel.stderr.on('data', (d: Buffer) => {
				if (stderr.length < maxOutput) stderr += d.toString('utf8');
			});
			channel.on('close', (code: number | null, signal?: string) => {
				clearTimeout(timer);
				resolve({code: code ?? (signal ? 128 : 255), stdout, stderr});
			});
			channel.end(options.input ?? '');
		});
	}

	close(): void {
		this.client.end();
	}
}

interface LabelledMethod {
	label: string;
	/** The method, made when its turn comes (a passphrase or password is asked for only then); undefined skips it. */
	make: () => Promise<AnyAuthMethod | undefined>;
}

/** The ways to log in, in ssh's order: key files, the agent, a password at the terminal. */
function authMethods(user: string, options: SshOptions): LabelledMethod[] {
	const out: LabelledMethod[] = [];
	const explicit = options.identities !== undefined && options.identities.length > 0;
	const files = explicit ? (options.identities ?? []) : defaultIdentityNames.map((n) => path.join(os.homedir(), '.ssh', n)).filter((f) => fs.existsSync(f));
	for (const file of files) {
		let data: Buffer;
		try {
			data = fs.readFileSync(file);
		} catch (error) {
			throw new UsageError(`cannot read key file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
		}
		const plain = utils.parseKey(data);
		const encrypted = plain instanceof Error && /passphrase/i.test(plain.message);
		if (plain instanceof Error && !encrypted) {
			if (explicit) throw new UsageError(`key file ${file}: ${plain.message}`);
			continue;
		}
		const prompt = options.prompt;
		if (encrypted && !prompt) {
			if (explicit) throw new UsageError(`key file ${file} has a passphrase, and there is no terminal to ask for it: use ssh-agent`);
			continue;
		}
		out.push({
			label: `key ${file}`,
			make: async () => {
				const passphrase = encrypted && prompt ? await prompt(`Enter passphrase for key '${file}': `) : undefined;
				const key = passphrase === undefined ? plain : utils.parseKey(data, passphrase);
				if (key instanceof Error) return undefined;
				return {type: 'publickey', username: user, key: data, ...(passphrase === undefined ? {} : {passphrase})};
			},
		});
	}
	const agent = options.agent ?? process.env['SSH_AUTH_SOCK'] ?? '';
	if (agent) out.push({label: 'ssh-agent', make: async () => ({type: 'agent', username: user, agent})});
	const prompt = options.prompt;
	if (prompt) out.push({label: 'password', make: async () => ({type: 'password', username: user, password: await prompt(`${user}'s password: `)})});
	return out;
}

/** For each known key type, the host-key algorithms that show it (an RSA key signs with SHA-2 too). */
export function serverHostKeyAlgorithms(types: readonly string[]): ServerHostKeyAlgorithm[] {
	return types.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])) as ServerHostKeyAlgorithm[];
}
