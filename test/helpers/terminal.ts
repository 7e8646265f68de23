// A real terminal for end-to-end tests: a command in its own tmux server (a pty,
// the line discipline, keys typed, the screen captured), as a user would run it.
import fs from 'node:fs';
import {execa} from 'execa';
import type {Test} from 'tap';

let sessions = 0;

/** The line the shell in the terminal prints when the command has ended, with $? (128+n for signal n). */
const exitMark = 'pvrun-test: exit status ';

/**
 * A command started by `bash -c` in its own tmux server: a real terminal
 * (pty, line discipline, Ctrl-C turned into SIGINT for the foreground
 * process group). bash is in that group too; it waits for the command and
 * goes on unless the command died of the SIGINT, then reports its status as
 * a user's shell would ($?: 128+n for signal n).
 */
export class Terminal {
	private readonly socket = `pvrun-test-${process.pid}-${++sessions}`;
	/** The shell's pid (the pane's process); the command is its child. */
	shellPid = 0;
	/** The tmux server's socket file (kill-server leaves it). */
	private socketPath = '';

	private constructor(t: Test) {
		t.teardown(async () => {
			await this.tmux('kill-server');
			if (this.socketPath) fs.rmSync(this.socketPath, {force: true});
		});
	}

	/** Run `command` in a terminal of `columns` by `rows`. */
	static async run(t: Test, command: string[], columns = 120, rows = 40): Promise<Terminal> {
		const terminal = new Terminal(t);
		const script = `"$@"; echo "${exitMark}$?"; sleep 600`;
		const r = await terminal.tmux('new-session', '-d', '-s', 'vm', '-x', String(columns), '-y', String(rows), '--', 'bash', '-c', script, 'bash', ...command);
		if (r.exitCode !== 0) throw new Error(`tmux did not start: ${r.stderr}`);
		const [pid = '0', socketPath = ''] = (await terminal.tmux('display-message', '-p', '-t', 'vm', '#{pane_pid} #{socket_path}')).stdout.split(' ');
		terminal.shellPid = Number(pid);
		terminal.socketPath = socketPath;
		return terminal;
	}

	tmux(...args: string[]) {
		return execa('tmux', ['-L', this.socket, '-f', '/dev/null', ...args], {reject: false, timeout: 10_000});
	}

	/** What the terminal shows now, line by line (an application's alternate screen while it is on). */
	async visible(): Promise<string[]> {
		return (await this.tmux('capture-pane', '-p', '-t', 'vm')).stdout.split('\n');
	}

	/** Make the terminal `columns` by `rows` (the application gets SIGWINCH). */
	async resize(columns: number, rows: number): Promise<void> {
		await this.tmux('resize-window', '-t', 'vm', '-x', String(columns), '-y', String(rows));
	}

	/** Everything the terminal showed (scroll-back included). */
	async screen(): Promise<string> {
		return (await this.tmux('capture-pane', '-p', '-J', '-S', '-', '-t', 'vm')).stdout;
	}

	async waitFor(text: string, ms: number): Promise<boolean> {
		const deadline = performance.now() + ms;
		while (performance.now() < deadline) {
			if ((await this.screen()).includes(text)) return true;
			await new Promise((r) => setTimeout(r, 200));
		}
		return false;
	}

	async keys(...keys: string[]): Promise<void> {
		await this.tmux('send-keys', '-t', 'vm', ...keys);
	}

	/** The command's exit status as the shell reported it, or undefined while it runs. */
	async status(): Promise<number | undefined> {
		const match = new RegExp(`${exitMark}(\\d+)`).exec(await this.screen());
		return match ? Number(match[1]) : undefined;
	}

	/** Wait up to `ms` for the command to end; its status, or undefined if it still runs. */
	async waitEnd(ms: number): Promise<number | undefined> {
		const deadline = performance.now() + ms;
		for (;;) {
			const status = await this.status();
			if (status !== undefined || performance.now() >= deadline) return status;
			await new Promise((r) => setTimeout(r, 100));
		}
	}
}
