// pvrun's own options: an argument starting with --pv- where a QEMU option
// could start (not the value of a QEMU option, see qemu-options.ts) belongs to
// pvrun; everything else goes to QEMU verbatim and in order. yargs parses only
// the extracted --pv- arguments, so it never sees (or reorders) QEMU's.
import yargs from 'yargs';
import {parseCpuList} from '../host/cpus.js';
import {PvrunError} from '../util/errors.js';
import {qemuOptions, qemuValueCount} from './qemu-options.js';

export interface PvOptions {
	cpus?: number[];
	log?: string;
	accel: 'auto' | 'kvm' | 'tcg';
	off: boolean;
	/** The native fast path (docs/fast-path.md), when built: on unless --pv-fast-path off. */
	fastPath: boolean;
	dryRun: boolean;
	qemu: string;
}

const valueOptions = new Set(['--pv-cpus', '--pv-log', '--pv-accel', '--pv-fast-path', '--pv-qemu']);
const flagOptions = new Set(['--pv-off', '--pv-dry-run']);
/** Every --pv- option pvrun knows (for --help and its test). */
export const pvOptionNames: readonly string[] = [...valueOptions, ...flagOptions];

/**
 * Split argv into pvrun's --pv- arguments and QEMU's arguments. An argument
 * is pvrun's only in option position: the value of a QEMU option that takes
 * one (`-append --pv-off`, `-name --pv-x`) is QEMU's, whatever it looks like.
 */
export function splitArgs(argv: readonly string[]): {pv: string[]; qemu: string[]} {
	const pv: string[] = [];
	const qemu: string[] = [];
	for (let i = 0; i < argv.length; i++) {
		const arg = argv[i] ?? '';
		if (!arg.startsWith('--pv-')) {
			qemu.push(arg);
			// The option's value (if the command line has one) goes along unexamined.
			if (qemuValueCount(arg) === 1 && i + 1 < argv.length) qemu.push(argv[++i] ?? '');
			continue;
		}
		const name = arg.split('=', 1)[0] ?? arg;
		if (flagOptions.has(name)) pv.push(arg);
		else if (valueOptions.has(name)) {
			if (arg.includes('=')) pv.push(arg);
			else {
				const value = argv[i + 1];
				if (value === undefined) throw new PvrunError(`${name} needs a value (see pvrun --help)`, {exitCode: 2});
				pv.push(arg, value);
				i++;
			}
		} else throw new PvrunError(`unknown pvrun option ${name} (see pvrun --help)`, {exitCode: 2});
	}
	return {pv, qemu};
}

/** Parse pvrun's own options. */
export function parsePvOptions(pv: string[]): PvOptions {
	// One argument per option for yargs: a value such as -nodefaults must not read as short flags.
	const joined: string[] = [];
	for (let i = 0; i < pv.length; i++) {
		const arg = pv[i] ?? '';
		joined.push(valueOptions.has(arg) && i + 1 < pv.length ? `${arg}=${pv[++i] ?? ''}` : arg);
	}
	const args = yargs(joined)
		.options({
			'pv-cpus': {type: 'string'},
			'pv-log': {type: 'string'},
			'pv-accel': {type: 'string', choices: ['auto', 'kvm', 'tcg'], default: 'auto'},
			'pv-off': {type: 'boolean', default: false},
			'pv-fast-path': {type: 'string', choices: ['on', 'off'], default: 'on'},
			'pv-dry-run': {type: 'boolean', default: false},
			'pv-qemu': {type: 'string', default: 'qemu-system-x86_64'},
		})
		.strict()
		.help(false)
		.version(false)
		.fail((message) => {
			throw new PvrunError(`${message.replace(/\s+/g, ' ')} (see pvrun --help)`, {exitCode: 2});
		})
		.parseSync();
	const options: PvOptions = {
		accel: args['pv-accel'] as PvOptions['accel'],
		off: args['pv-off'],
		fastPath: args['pv-fast-path'] === 'on',
		dryRun: args['pv-dry-run'],
		qemu: args['pv-qemu'],
	};
	if (args['pv-cpus'] !== undefined) options.cpus = parseCpuList(args['pv-cpus']);
	if (args['pv-log'] !== undefined) options.log = args['pv-log'];
	return options;
}

/** The vCPU count QEMU will create from -smp (maxcpus for hot-plug), default 1. */
export function vcpuCount(qemu: readonly string[]): number {
	let count = 1;
	for (const option of qemuOptions(qemu)) {
		if (option.name !== 'smp') continue;
		const value = option.value ?? '';
		const fields = new Map<string, number>();
		for (const [k, part] of value.split(',').entries()) {
			const [key, v] = part.includes('=') ? part.split('=', 2) : [k === 0 ? 'cpus' : part, ''];
			if (key) fields.set(key, Number(v ?? ''));
		}
		const first = value.split(',')[0] ?? '';
		if (/^\d+$/.test(first)) fields.set('cpus', Number(first));
		const cpus = fields.get('maxcpus') || fields.get('cpus') || 0;
		if (cpus > 0) count = cpus;
		else {
			const product = ['sockets', 'dies', 'clusters', 'cores', 'threads'].reduce((p, k) => p * (fields.get(k) || 1), 1);
			count = product;
		}
	}
	return count;
}

/** Whether the user chose an accelerator themselves (pvrun then adds none). */
export function userChoseAccel(qemu: readonly string[]): boolean {
	return qemuOptions(qemu).some(({name, value}) => {
		if (name === 'enable-kvm' || name === 'accel') return true;
		if (name === 'machine' || name === 'M') return /(^|,)accel=/.test(value ?? '');
		return false;
	});
}

/** Whether the user's -name already says debug-threads=... (pvrun then leaves it alone). */
export function userSetDebugThreads(qemu: readonly string[]): boolean {
	return qemuOptions(qemu).some(({name, value}) => name === 'name' && /(^|,)debug-threads=/.test(value ?? ''));
}
