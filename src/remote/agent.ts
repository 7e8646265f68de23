// What `pvrun agent install|uninstall|status` does: connect, act, and say so, a line
// per step; the install waits until pvrun has answered the started agent.
import {PvrunError, UsageError} from '../util/errors.js';
import {runtimeRoot} from '../vm/runtime-dir.js';
import {isVmNamed, readVmStates, type VmStatus} from '../vm/state.js';
import {install, printable, probe, procCmdline, uninstall, vmForwarding, waitLive, type Reporter} from './install.js';
import {formatTarget, parseTarget, SshSession, type SshOptions, type SshTarget} from './ssh.js';

export interface AgentArgs {
	action: 'install' | 'uninstall' | 'status';
	target: string;
	identity: string[];
	knownHosts: string;
	acceptNewHostKey: boolean;
	vm?: string | undefined;
	waitSeconds: number;
}

const stdoutReporter: Reporter = {line: (text) => process.stdout.write(`${text}\n`)};

/** Carry out one action; resolves to the exit code (failures throw PvrunError: exit 1, usage 2). */
export async function agentAction(args: AgentArgs, report: Reporter = stdoutReporter, ssh: Partial<SshOptions> = {}): Promise<number> {
	if (!Number.isFinite(args.waitSeconds) || args.waitSeconds <= 0) throw new UsageError(`--wait must be a positive number of seconds, not ${args.waitSeconds}`);
	const target = parseTarget(args.target);
	const where = formatTarget(target);
	const session = await SshSession.connect(target, {
		identities: args.identity,
		knownHosts: args.knownHosts,
		acceptNewHostKey: args.acceptNewHostKey,
		prompt: process.stdin.isTTY ? askHidden : undefined,
		onHostKey: (line) => report.line(`pvrun agent: ${where}: ${line}`),
		...ssh,
	});
	try {
		if (args.action === 'uninstall') {
			const removed = await uninstall(session, report);
			report.line(removed ? `pvrun agent: ${where}: agent removed` : `pvrun agent: ${where}: no agent installed; nothing to do`);
			return 0;
		}
		if (args.action === 'status') return await status(session, target, args, report);
		const outcome = await install(session, report);
		const version = outcome.facts.version || 'pvagent';
		if (!outcome.changed) {
			report.line(`pvrun agent: ${where}: ${version} installed and running, files unchanged; nothing to do`);
			return 0;
		}
		const vm = pickVm(target, args.vm);
		if (!(await waitLive(session, args.waitSeconds * 1000)))
			throw new PvrunError(
				`${where}: ${version} runs, but pvrun did not answer it within ${args.waitSeconds} s: is this guest under pvrun? (its log: /var/log/pvagent.log, or journalctl -u pvagent)`,
			);
		const host = vm.vm ? await waitActive(vm.vm, 10_000) : undefined;
		report.line(
			`pvrun agent: ${where}: ${version} installed and running; pvrun answered${
				vm.vm ? ` (VM ${vm.vm.name ?? vm.vm.id}: hints ${host ?? 'not active yet'})` : ` (${vm.why})`
			}`,
		);
		return 0;
	} finally {
		session.close();
	}
}

async function status(session: SshSession, target: SshTarget, args: AgentArgs, report: Reporter): Promise<number> {
	const facts = await probe(session);
	const where = formatTarget(target);
	const vm = pickVm(target, args.vm);
	const host = vm.vm ? `VM ${vm.vm.name ?? vm.vm.id}: hints ${describeHints(vm.vm)}` : vm.why;
	if (!facts.version) {
		report.line(`pvrun agent: ${where}: no agent installed (${host})`);
		return 3;
	}
	report.line(
		`pvrun agent: ${where}: ${facts.version}, ${facts.running ? 'running' : 'not running'}, ${facts.live ? 'pvrun answered it' : 'no answer from pvrun'} (${facts.init} service; ${host})`,
	);
	return facts.running ? 0 : 3;
}

/** The VM to watch: --vm, or the one forwarding the target's port; `why` says why none. */
function pickVm(target: SshTarget, wanted: string | undefined): {vm?: VmStatus; why: string} {
	const {vms} = readVmStates(runtimeRoot().dir);
	if (wanted !== undefined) {
		const vm = vms.find((v) => isVmNamed(v, wanted));
		if (!vm) throw new UsageError(`no pvrun VM "${wanted}" (pvrun status lists them)`);
		return {vm, why: ''};
	}
	const found = vmForwarding(target, vms, procCmdline);
	if (found.length === 1 && found[0]) return {vm: found[0], why: ''};
	return {
		why: found.length
			? `${found.length} pvrun VMs forward port ${target.port}: name one with --vm`
			: 'no pvrun VM here forwards that port: the guest said pvrun answered',
	};
}

function describeHints(vm: VmStatus): string {
	const h = vm.hints;
	if (!h) return 'unknown';
	return h.state === 'active' ? `active${h.types?.length ? ` (${h.types.join(', ')})` : ''}` : `${h.state}${h.reason ? `: ${printable(h.reason)}` : ''}`;
}

/** Wait until the VM's state file says its hints are active; what it says last. */
async function waitActive(vm: VmStatus, timeoutMs: number): Promise<string> {
	const deadline = performance.now() + timeoutMs;
	for (;;) {
		const now = readVmStates(runtimeRoot().dir).vms.find((v) => v.runDir === vm.runDir) ?? vm;
		if (now.hints?.state === 'active' || performance.now() > deadline) return describeHints(now);
		await new Promise((resolve) => setTimeout(resolve, 200));
	}
}

async function askHidden(question: string): Promise<string> {
	const {read} = await import('read');
	return read({prompt: question, silent: true, replace: '', output: process.stderr});
}
