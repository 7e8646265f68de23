import t from 'tap';
import {agentAction} from '../../src/remote/agent.js';

const base = {action: 'install' as const, identity: [], knownHosts: '/nonexistent/known_hosts', acceptNewHostKey: false, waitSeconds: 60};

t.test('bad arguments are usage errors before any connection', async (t) => {
	await t.rejects(agentAction({...base, target: 'root@host', waitSeconds: 0}), {
		name: 'UsageError',
		message: '--wait must be a positive number of seconds, not 0',
	});
	await t.rejects(agentAction({...base, target: 'root@'}), {name: 'UsageError', message: /bad SSH target "root@"/});
});
