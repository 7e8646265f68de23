// Progress for long steps: a spinner on a terminal, plain one-line records
// elsewhere (CI logs, pipes), always on stderr so stdout stays for results.
import ora, {type Ora} from 'ora';

export interface Step {
	/** Update the step's text (shown live on a terminal only). */
	update(text: string): void;
	/** Mark the step done; `detail` is appended to its line. */
	done(detail?: string): void;
	/** Mark the step failed. */
	fail(detail?: string): void;
}

export interface Progress {
	step(text: string): Step;
	info(text: string): void;
}

/**
 * Whether live (redrawn) progress suits this stream and environment: a
 * terminal that says its width. On a terminal of width 0 (a pty nobody sized,
 * as script(1) makes when its own input is no terminal) ora counts the lines
 * to redraw by that width and moves the cursor up forever.
 */
export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
	return stream.isTTY === true && stream.columns > 0 && !process.env['CI'] && process.env['TERM'] !== 'dumb';
}

/** Progress that prints `prefix: text` lines; spinners only on a terminal. */
export function createProgress(prefix: string, stream: NodeJS.WriteStream = process.stderr): Progress {
	const live = isInteractive(stream);
	return {
		step(text) {
			const started = performance.now();
			const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
			const spinner: Ora | undefined = live ? ora({text: `${prefix}: ${text}`, stream}).start() : undefined;
			return {
				update(next) {
					if (spinner) spinner.text = `${prefix}: ${text}: ${next}`;
				},
				done(detail) {
					const line = `${prefix}: ${text}: ${detail ?? 'done'} (${elapsed()})`;
					if (spinner) spinner.succeed(line);
					else stream.write(`${line}\n`);
				},
				fail(detail) {
					const line = `${prefix}: ${text}: ${detail ?? 'failed'} (${elapsed()})`;
					if (spinner) spinner.fail(line);
					else stream.write(`${line}\n`);
				},
			};
		},
		info(text) {
			stream.write(`${prefix}: ${text}\n`);
		},
	};
}

/** Progress that prints nothing (for library callers and tests). */
export const silentProgress: Progress = {
	step: () => ({update() {}, done() {}, fail() {}}),
	info() {},
};
