// Reading /proc and /sys the forgiving way: a file or folder that is not there (another kernel,
// a process gone meanwhile, a fixture that leaves it out) reads as nothing, never as an error.
import fs from 'node:fs';
import {parseCpuList} from './cpus.js';

/** The file's text, or undefined if it cannot be read. */
export function readText(file: string): string | undefined {
	try {
		return fs.readFileSync(file, 'utf8');
	} catch {
		return undefined;
	}
}

/** The folder's entries, or none. */
export function listDir(dir: string): string[] {
	try {
		return fs.readdirSync(dir);
	} catch {
		return [];
	}
}

/** A CPU list file's CPUs ("0-3,5"; none for an empty, "(null)" or malformed one). */
export function readCpuListFile(file: string): number[] {
	const text = readText(file)?.trim() ?? '';
	if (text === '' || text === '(null)') return [];
	try {
		return parseCpuList(text);
	} catch {
		return [];
	}
}
