// `pvrun agent install|uninstall|status user@host[:port]`: the guest agent into a guest
// that runs under pvrun but was not built with it, over SSH (src/remote/agent.ts). The SSH
// code loads only when the command runs: pvrun's start as QEMU does not pay for it.
import type {CommandModule} from 'yargs';
import type {AgentArgs} from './agent.js';
import {defaultKnownHosts} from './known-hosts.js';

/** The yargs command; `done` gets the exit code (3 from status: no agent running). */
export const agentCommand = (done: (code: number) => void): CommandModule => ({
	command: 'agent <action> <target>',
	describe: 'install, remove or look at the guest agent in a running guest over SSH',
	builder: (y) =>
		y
			.positional('action', {choices: ['install', 'uninstall', 'status'] as const, describe: 'what to do'})
			.positional('target', {type: 'string', describe: 'user@host[:port], e.g. root@127.0.0.1:2222 (QEMU -nic user,hostfwd=tcp:127.0.0.1:2222-:22)'})
			.option('identity', {
				alias: 'i',
				type: 'string',
				array: true,
				requiresArg: true,
				describe: 'a private key file (default: ~/.ssh/id_*, then ssh-agent, then a password)',
			})
			.option('known-hosts', {type: 'string', requiresArg: true, describe: 'the known_hosts file (default ~/.ssh/known_hosts)'})
			.option('accept-new-host-key', {
				type: 'boolean',
				default: false,
				describe: 'take a host key known_hosts lacks, and add it there (a changed key is refused all the same)',
			})
			.option('vm', {
				type: 'string',
				requiresArg: true,
				describe: "the pvrun VM on this machine (id, name, QEMU or pvrun pid) whose answer to wait for; default: the one forwarding the target's port",
			})
			.option('wait', {type: 'number', default: 60, requiresArg: true, describe: 'seconds to wait for pvrun to answer the started agent'}),
	handler: async (args) => {
		const {agentAction} = await import('./agent.js');
		const code = await agentAction({
			action: args['action'] as AgentArgs['action'],
			target: String(args['target']),
			identity: (args['identity'] as string[] | undefined) ?? [],
			knownHosts: (args['known-hosts'] as string | undefined) ?? defaultKnownHosts(),
			acceptNewHostKey: args['accept-new-host-key'] === true,
			vm: args['vm'] as string | undefined,
			waitSeconds: Number(args['wait']),
		});
		done(code);
	},
});
