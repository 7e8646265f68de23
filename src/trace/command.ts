// `pvrun trace [NAME] [--vm VM] [--all] [--duration SECONDS] [-- BPFTRACE-OPTION ...]`: the
// host-side bpftrace scripts (bpf/trace/) run against one VM's vCPU threads. Without a name it
// lists them. Its modules load only when it runs: pvrun's other commands never pay for them.
import type {Writable} from 'node:stream';
import type {ArgumentsCamelCase, Argv, CommandModule} from 'yargs';
import {PvrunError, UsageError} from '../util/errors.js';

export interface TraceArgs {
	name?: string | undefined;
	vm?: string | undefined;
	all: boolean;
	duration?: number | undefined;
	/** bpftrace's own options, after `--`. */
	'--'?: Array<string | number> | undefined;
}

/** --duration, checked: seconds above 0, at most a day. */
export function traceDuration(value: number | undefined): number | undefined {
	if (value === undefined) return undefined;
	if (!(value > 0 && value <= 86_400)) throw new UsageError(`--duration takes seconds above 0 and at most 86400, not ${value}`);
	return value;
}

/** The handler's arguments, copied at once: yargs moves what follows `--` back into `_` once the handler has started. */
export function traceArgs(args: TraceArgs): TraceArgs {
	return {
		...(args.name !== undefined ? {name: args.name} : {}),
		...(args.vm !== undefined ? {vm: args.vm} : {}),
		all: args.all,
		...(args.duration !== undefined ? {duration: args.duration} : {}),
		...(args['--'] !== undefined ? {'--': [...args['--']]} : {}),
	};
}

/** What `pvrun trace` does with its arguments: list the scripts, or run one. */
export async function trace(args: TraceArgs, out: Writable = process.stdout): Promise<void> {
	const {findScript, listScripts, formatScriptList, bpftraceArgs} = await import('./scripts.js');
	const extra = (args['--'] ?? []).map(String);
	if (args.name === undefined) {
		const given = [args.vm !== undefined && '--vm', args.duration !== undefined && '--duration', extra.length > 0 && '--'].filter(Boolean);
		if (given.length) throw new UsageError(`${given.join(', ')}: only with a script's name (pvrun trace lists them)`);
		out.write(formatScriptList(listScripts()));
		return;
	}
	const durationS = traceDuration(args.duration);
	const script = findScript(args.name);
	const {traceTarget} = await import('./target.js');
	const vm = traceTarget({...(args.vm !== undefined ? {vm: args.vm} : {}), all: args.all});
	const {findBpftrace, missingBpftrace, runTrace} = await import('./run.js');
	const bpftrace = findBpftrace();
	if (!bpftrace) throw new PvrunError(missingBpftrace);
	await runTrace({
		bpftrace,
		args: bpftraceArgs(script, vm, extra),
		what: `${script.name}.bt on ${vm.label}`,
		qemuPid: vm.qemuPid,
		out,
		...(durationS !== undefined ? {durationS} : {}),
	});
}

export const traceCommand: CommandModule<object, TraceArgs> = {
	command: 'trace [name]',
	describe: "run a host-side bpftrace script on a VM's vCPU threads (no name: list them)",
	builder: (y: Argv) =>
		y
			.positional('name', {type: 'string', describe: 'the script: runqlat, preempt, hint-delay (bpf/trace/), or a .bt file of yours'})
			.option('vm', {
				type: 'string',
				requiresArg: true,
				describe: 'the VM: its id, name, or QEMU or pvrun pid (default: the only one running), or a plain QEMU pid',
			})
			.option('all', {type: 'boolean', default: false, describe: "look among every user's VMs, not only yours"})
			.option('duration', {type: 'number', requiresArg: true, describe: 'stop after SECONDS and print what was measured (default: at Ctrl-C)'})
			.parserConfiguration({'populate--': true})
			.example('pvrun trace runqlat --duration 10', "the run-queue latency of the only VM's vCPU threads for 10 s")
			.example('pvrun trace hint-delay --vm web -- -f json', "VM web's; bpftrace's options after --") as unknown as Argv<TraceArgs>,
	handler: async (args: ArgumentsCamelCase<TraceArgs>) => {
		await trace(traceArgs(args));
	},
};
