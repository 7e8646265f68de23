// CPU lists in the kernel's text form ("0-3,5,7-8"): parsing, formatting, and
// reading which CPUs a thread (or this process) may run on from /proc. Pure
// JavaScript; the syscalls that change affinity live in libc.ts.
import fs from 'node:fs';
import {PvrunError} from '../util/errors.js';

/** The highest CPU number a list may name (the kernel's NR_CPUS ceiling we accept). */
export const MAX_CPU = 4095;

// One comma-separated item: a CPU ("5") or an inclusive range ("0-3").
const ITEM = /^(\d+)(?:-(\d+))?$/;

/** The CPUs named by a kernel CPU list such as "0-3,5,7-8", sorted and without duplicates. */
export function parseCpuList(text: string): number[] {
	const trimmed = text.trim();
	if (trimmed === '') throw badList(text, 'it is empty');
	const cpus = new Set<number>();
	for (const item of trimmed.split(',')) addItem(cpus, item.trim(), text);
	return [...cpus].sort((a, b) => a - b);
}

// Adds the CPUs of one list item to `cpus`, or throws naming what is wrong with it.
function addItem(cpus: Set<number>, item: string, text: string): void {
	const match = ITEM.exec(item);
	if (match === null) throw badList(text, item === '' ? 'it has an empty item' : `"${item}" is not a CPU or a low-high range`);
	const low = cpuNumber(match[1] ?? '', text);
	const high = match[2] === undefined ? low : cpuNumber(match[2], text);
	if (high < low) throw badList(text, `range ${item} runs backwards`);
	for (let cpu = low; cpu <= high; cpu++) cpus.add(cpu);
}

// One CPU number from its digits, checked against MAX_CPU.
function cpuNumber(digits: string, text: string): number {
	const cpu = Number(digits);
	if (cpu > MAX_CPU) throw badList(text, `CPU ${digits} is above ${MAX_CPU}`);
	return cpu;
}

// The error for a malformed list: says what is wrong and what a good list looks like.
function badList(text: string, why: string): PvrunError {
	return new PvrunError(`invalid CPU list "${text}": ${why}; write CPUs and ranges like 0-3,5,7-8`);
}

/** The kernel's text form of a set of CPUs, e.g. [0, 1, 2, 3, 5] -> "0-3,5" ("" for none). */
export function formatCpuList(cpus: readonly number[]): string {
	const sorted = [...new Set(cpus)].sort((a, b) => a - b);
	const items: string[] = [];
	for (let i = 0; i < sorted.length;) {
		const low = checkedCpu(sorted[i]);
		let high = low;
		while (i + 1 < sorted.length && sorted[i + 1] === high + 1) high = checkedCpu(sorted[++i]);
		items.push(high === low ? `${low}` : `${low}-${high}`);
		i++;
	}
	return items.join(',');
}

// A CPU number from a caller's array, rejected unless it is an integer in 0..MAX_CPU.
function checkedCpu(cpu: number | undefined): number {
	if (cpu === undefined || !Number.isInteger(cpu) || cpu < 0 || cpu > MAX_CPU) {
		throw new PvrunError(`invalid CPU number ${String(cpu)}: CPUs are integers from 0 to ${MAX_CPU}`);
	}
	return cpu;
}

/** The CPUs thread `tid` of process `pid` may run on, from Cpus_allowed_list in its /proc status. */
export function threadCpusAllowed(pid: number, tid: number): number[] {
	const file = `/proc/${pid}/task/${tid}/status`;
	let status: string;
	try {
		status = fs.readFileSync(file, 'utf8');
	} catch (error) {
		throw new PvrunError(`cannot read ${file}: thread ${tid} of process ${pid} does not exist (has it exited?)`, {cause: error});
	}
	return cpusAllowedIn(status, file);
}

/** The CPUs this process may run on (its main thread's affinity, from /proc/self/status). */
export function ownCpus(): number[] {
	return cpusAllowedIn(fs.readFileSync('/proc/self/status', 'utf8'), '/proc/self/status');
}

// The Cpus_allowed_list field of a /proc status file's text.
function cpusAllowedIn(status: string, file: string): number[] {
	const match = /^Cpus_allowed_list:\s*(.*)$/m.exec(status);
	if (match === null) throw new PvrunError(`${file} has no Cpus_allowed_list line; pvrun needs a Linux /proc`);
	return parseCpuList(match[1] ?? '');
}
