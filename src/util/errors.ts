// One error type for everything pvrun reports to a user: a single line that
// names what to fix, an exit code, and the underlying cause kept for debugging.

/** An error meant for the user: `message` is one line that says what to fix. */
export class PvrunError extends Error {
	readonly exitCode: number;

	constructor(message: string, options: {cause?: unknown; exitCode?: number} = {}) {
		super(message, options.cause === undefined ? undefined : {cause: options.cause});
		this.name = new.target.name; // subclasses (ConnectError, AgentError...) keep their own name
		this.exitCode = options.exitCode ?? 1;
	}
}

/** The first line of whatever was thrown, for one-line reports. */
export function firstLine(error: unknown): string {
	const text = error instanceof Error ? error.message : String(error);
	return text.split('\n', 1)[0] ?? '';
}
