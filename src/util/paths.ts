// Where pvrun finds its own files and where it keeps its cache.
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

/** The repository (or installed package) root: two levels above dist/<dir>/. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The cache root: $XDG_CACHE_HOME/pvrun, or ~/.cache/pvrun. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
	const xdg = env['XDG_CACHE_HOME'];
	const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
	return path.join(base, 'pvrun');
}
