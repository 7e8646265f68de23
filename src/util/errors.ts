// pvrun's errors: a tree under PvrunError, one class per place things go
// wrong, each keeping its cause. Only the command line's edge (src/cli/main.ts)
// turns one into what a user sees: one line naming what to fix, and an exit
// status; PVRUN_DEBUG=1 adds the whole cause chain.
//
//   PvrunError                exit 1 unless said
//    ├─ UsageError            exit 2: a command line or option pvrun cannot take
//    ├─ QemuError             exit 127 not found, 126 not executable or not started
//    ├─ QmpError              src/qemu/qmp.ts: ConnectError, ExecuteError, ExecInterruptedError, StateError
//    ├─ AgentError            the guest agent's channel; AgentReplyError: the agent answered an error;
//    │                        AgentTimeoutError: it did not answer in time
//    ├─ ShmError              the shared-memory area: creating, mapping
//    ├─ PinError              a thread's affinity, nice value or scheduling the kernel refused
//    └─ ImageError            building or finding the default guest image

/** An error meant for the user: `message` is one line that says what to fix. */
export class PvrunError extends Error {
	readonly exitCode: number;

	constructor(message: string, options: {cause?: unknown; exitCode?: number} = {}) {
		super(message, options.cause === undefined ? undefined : {cause: options.cause});
		this.name = new.target.name; // subclasses keep their own name
		this.exitCode = options.exitCode ?? 1;
	}
}

/** A command line, option or value pvrun cannot take: exit status 2. */
export class UsageError extends PvrunError {
	constructor(message: string, options: {cause?: unknown} = {}) {
		super(message, {...options, exitCode: 2});
	}
}

/** QEMU cannot be run or started (a shell's statuses: 127 not found, 126 not executable). */
export class QemuError extends PvrunError {}

/** The guest agent's channel: connecting, a request that timed out, a reply that makes no sense. */
export class AgentError extends PvrunError {}

/** The shared-memory area between host and guest: creating or mapping it. */
export class ShmError extends PvrunError {}

/** A change to a thread's affinity, nice value or scheduling that the kernel refused. */
export class PinError extends PvrunError {}

/** The default guest image: resolving, downloading, building, finding it. */
export class ImageError extends PvrunError {}

/** The first line of whatever was thrown, for one-line reports. */
export function firstLine(error: unknown): string {
	const text = error instanceof Error ? error.message : String(error);
	return text.split('\n', 1)[0] ?? '';
}

/** `error` and its causes, one line each ("Name: message"), outermost first (at most 10 deep). */
export function causeChain(error: unknown): string[] {
	const lines: string[] = [];
	for (let e: unknown = error, depth = 0; e !== undefined && depth < 10; depth++) {
		lines.push(
			e instanceof Error ? `${e.name}: ${firstLine(e)}${(e as NodeJS.ErrnoException).code ? ` (${(e as NodeJS.ErrnoException).code})` : ''}` : String(e),
		);
		e = e instanceof Error ? e.cause : undefined;
	}
	return lines;
}
