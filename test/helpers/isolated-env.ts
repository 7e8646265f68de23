// pvrun's own commands run where they can start nothing: PATH is an empty
// directory (no git, apt-cache or QEMU) and the cache, HOME and TMPDIR (also
// pvrun's runtime root) are fresh temporary directories. A command line that should be refused but is
// not then fails at once on the image (no apt-cache) instead of building one,
// booting a guest or running a benchmark; a test sees an ImageError (exit 1)
// where it expected a usage error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import type {Test} from 'tap';
import {packageRoot} from '../../src/util/paths.js';

export interface IsolatedEnv {
	PATH: string;
	XDG_CACHE_HOME: string;
	HOME: string;
	TMPDIR: string;
	PVRUN_RUNTIME_DIR: string;
}

/** Fresh directories for an isolated environment, removed in teardown. */
export function isolatedEnv(t: Pick<Test, 'teardown'>): IsolatedEnv {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-isolated-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	const dir = (name: string) => {
		fs.mkdirSync(path.join(root, name));
		return path.join(root, name);
	};
	const tmp = dir('tmp');
	return {PATH: dir('bin'), XDG_CACHE_HOME: dir('cache'), HOME: dir('home'), TMPDIR: tmp, PVRUN_RUNTIME_DIR: tmp};
}

/** This process's environment isolated until teardown, for commands run in-process. */
export function isolateProcess(t: Pick<Test, 'teardown'>): IsolatedEnv {
	const env = isolatedEnv(t);
	const names = Object.keys(env) as Array<keyof IsolatedEnv>;
	const saved = names.map((name) => [name, process.env[name]] as const);
	t.teardown(() => {
		for (const [name, value] of saved) {
			if (value === undefined) delete process.env[name];
			else process.env[name] = value;
		}
	});
	for (const name of names) process.env[name] = env[name];
	return env;
}

export interface CliResult {
	exitCode: number | undefined;
	stdout: string;
	stderr: string;
}

/**
 * The built CLI (dist/cli/main.js) in an isolated environment, with nothing
 * else of this one (no NODE_OPTIONS: what pvrunCommand()'s `env -u` is for,
 * which needs an `env` on PATH). Killed after 10 s at the latest.
 */
export async function runIsolated(env: IsolatedEnv, ...args: string[]): Promise<CliResult> {
	const r = await execa(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'main.js'), ...args], {
		env: {...env},
		extendEnv: false,
		reject: false,
		timeout: 10_000,
	});
	return {exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr};
}
