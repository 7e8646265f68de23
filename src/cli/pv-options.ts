// pvrun's own options: an argument starting with --pv- where a QEMU option
// could start (not the value of a QEMU option, see qemu-options.ts) belongs to
// pvrun; everything else goes to QEMU verbatim and in order. Node's parseArgs
// parses only the extracted --pv- arguments, so it never sees (or reorders)
// QEMU's. (Not yargs, as pvrun's commands use: a QEMU command line, libvirt's
// probes included, would load it for nothing: ~80 ms of start-up.)
import {parseArgs} from 'node:util';
import {createRequire} from 'node:module';
import {parseCpuList} from '../host/cpus.js';
import {firstLine, UsageError} from '../util/errors.js';
import {qemuValueCount} from '../qemu/args.js';
import {defaultGuestCpuPercent} from '../util/guest-budget.js';
import {defaultAgentWaitS, defaultCsBoost, type CsBoost, type VmConfig} from '../vm/config.js';
import {loadHintScripts} from '../vm/hint-scripts.js';
import {pvOptionDocs, valueOptionNames} from './reference.js';

const flagOptions: ReadonlySet<string> = new Set(pvOptionDocs.filter((o) => o.arg === undefined).map((o) => o.name));
/** Every --pv- option pvrun knows (for --help and its test). */
export const pvOptionNames: readonly string[] = pvOptionDocs.map((o) => o.name);

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
		else if (valueOptionNames.has(name)) {
			if (arg.includes('=')) pv.push(arg);
			else {
				const value = argv[i + 1];
				if (value === undefined) throw new UsageError(`${name} needs a value (see pvrun --help)`);
				pv.push(arg, value);
				i++;
			}
		} else throw new UsageError(`unknown pvrun option ${name}${suggestion(name)} (see pvrun --help)`);
	}
	return {pv, qemu};
}

/** "; did you mean --pv-cpus?" for a name within two edits of a known option (a typo), else nothing. */
function suggestion(name: string): string {
	// Loaded on this error path only: every pvrun (libvirt's probes too) parses its options.
	const {closest, distance} = createRequire(import.meta.url)('fastest-levenshtein') as typeof import('fastest-levenshtein');
	const near = closest(name, [...pvOptionNames]);
	return distance(name, near) <= 2 ? `; did you mean ${near}?` : '';
}

/** A value of `name` that must be one of `choices` (yargs' wording, which users of pvrun's commands see too). */
function choice<T extends string>(name: string, value: string, choices: readonly T[]): T {
	if ((choices as readonly string[]).includes(value)) return value as T;
	const listed = choices.map((c) => JSON.stringify(c)).join(', ');
	throw new UsageError(`Invalid values: Argument: ${name}, Given: ${JSON.stringify(value)}, Choices: ${listed} (see pvrun --help)`);
}

/** A whole number of seconds, 1 to a day. */
function seconds(name: string, value: string): number {
	const n = Number(value);
	if (/^\d+$/.test(value) && n >= 1 && n <= 86_400) return n;
	throw new UsageError(`--${name} takes a whole number of seconds from 1 to 86400, not ${JSON.stringify(value)} (see pvrun --help)`);
}

/** A whole number from 1 to 1000 (--pv-share). */
function weight(name: string, value: string): number {
	const n = Number(value);
	if (/^\d+$/.test(value) && n >= 1 && n <= 1000) return n;
	throw new UsageError(`--${name} takes a whole number from 1 to 1000, not ${JSON.stringify(value)} (see pvrun --help)`);
}

/** A share of one CPU, percent: 0.5 to 100, with or without `%`; `off` is 0 (no budget). */
function percent(name: string, value: string): number {
	if (value === 'off') return 0;
	const n = Number(value.replace(/%$/, ''));
	if (/^\d+(\.\d+)?%?$/.test(value) && n >= 0.5 && n <= 100) return n;
	throw new UsageError(`--${name} takes a percentage of one CPU from 0.5 to 100, or off, not ${JSON.stringify(value)} (see pvrun --help)`);
}

/** The keys of --pv-cs-boost, each with its unit and bounds. */
const boostKeys = {
	max: {field: 'maxUs', unit: 'us', min: 10, max: 100_000},
	share: {field: 'sharePct', unit: '%', min: 0, max: 50},
	window: {field: 'windowMs', unit: 'ms', min: 10, max: 10_000},
	payback: {field: 'paybackPct', unit: '%', min: 0, max: 1000},
} as const;

/** --pv-cs-boost max=1000us,share=10%,window=100ms,payback=100%: any keys, in any order; the rest keep their defaults. */
export function csBoost(value: string): CsBoost {
	const out: CsBoost = {...defaultCsBoost};
	for (const part of value.split(',')) {
		const m = /^(\w+)=(\d+)([a-z%]*)$/.exec(part);
		const key = m && Object.hasOwn(boostKeys, m[1] ?? '') ? boostKeys[m[1] as keyof typeof boostKeys] : undefined;
		const n = Number(m?.[2]);
		if (!m || !key || (m[3] !== '' && m[3] !== key.unit) || n < key.min || n > key.max)
			throw new UsageError(
				`--pv-cs-boost: ${JSON.stringify(part)} is not one of ${Object.entries(boostKeys)
					.map(([k, b]) => `${k}=${b.min}-${b.max}${b.unit}`)
					.join(', ')} (see docs/cli.md)`,
			);
		out[key.field] = n;
	}
	return out;
}

/** Node's parseArgs over the joined --pv- arguments; its errors as one PvrunError line. */
function parseJoined(joined: string[]) {
	try {
		return parseArgs({
			args: joined,
			strict: true,
			allowPositionals: false,
			options: {
				'pv-cpus': {type: 'string'},
				'pv-log': {type: 'string'},
				'pv-metrics': {type: 'string'},
				'pv-accel': {type: 'string', default: 'auto'},
				'pv-off': {type: 'boolean', default: false},
				'pv-fast-path': {type: 'string', default: 'on'},
				'pv-dry-run': {type: 'boolean', default: false},
				'pv-qemu': {type: 'string', default: 'qemu-system-x86_64'},
				'pv-agent-wait': {type: 'string', default: String(defaultAgentWaitS)},
				'pv-cs': {type: 'string', default: 'off'},
				'pv-cs-feedback': {type: 'string', default: 'auto'},
				'pv-cs-boost': {type: 'string'},
				'pv-placement': {type: 'string', default: 'auto'},
				'pv-guest-cpu': {type: 'string', default: String(defaultGuestCpuPercent)},
				'pv-share': {type: 'string', default: '1'},
				'pv-hint-script': {type: 'string', multiple: true},
			},
		}).values;
	} catch (error) {
		throw new UsageError(`${error instanceof Error ? error.message.split('\n')[0] : String(error)} (see pvrun --help)`);
	}
}

/** Parse pvrun's own options. */
export function parsePvOptions(pv: string[]): VmConfig {
	// One argument per option: a value such as -nodefaults must not read as an option.
	const joined: string[] = [];
	for (let i = 0; i < pv.length; i++) {
		const arg = pv[i] ?? '';
		joined.push(valueOptionNames.has(arg) && i + 1 < pv.length ? `${arg}=${pv[++i] ?? ''}` : arg);
	}
	const values = parseJoined(joined);
	const options: VmConfig = {
		accel: choice('pv-accel', values['pv-accel'], ['auto', 'kvm', 'tcg'] as const),
		off: values['pv-off'],
		fastPath: choice('pv-fast-path', values['pv-fast-path'], ['on', 'off'] as const) === 'on',
		dryRun: values['pv-dry-run'],
		qemu: values['pv-qemu'],
		agentWaitS: seconds('pv-agent-wait', values['pv-agent-wait']),
		cs: choice('pv-cs', values['pv-cs'], ['off', 'observe', 'act'] as const),
		csBoost: values['pv-cs-boost'] === undefined ? {...defaultCsBoost} : csBoost(values['pv-cs-boost']),
		csFeedback: choice('pv-cs-feedback', values['pv-cs-feedback'], ['auto', 'bpf', 'proc'] as const),
		placement: choice('pv-placement', values['pv-placement'], ['auto', 'priority', 'cpuset', 'threads'] as const),
		guestCpuPercent: percent('pv-guest-cpu', values['pv-guest-cpu']),
		share: weight('pv-share', values['pv-share']),
	};
	if (options.placement === 'priority' && options.cs === 'act')
		throw new UsageError("--pv-placement priority and --pv-cs act both set the vCPU threads' scheduling class: use one of them (see docs/placement.md)");
	if (values['pv-cpus'] !== undefined) {
		try {
			options.cpus = parseCpuList(values['pv-cpus']);
		} catch (error) {
			throw new UsageError(`--pv-cpus: ${firstLine(error)} (see pvrun --help)`, {cause: error});
		}
	}
	if (values['pv-log'] !== undefined) options.log = values['pv-log'];
	if (values['pv-hint-script']?.length) options.hintScripts = loadHintScripts(values['pv-hint-script']);
	if (values['pv-metrics'] !== undefined) {
		if (values['pv-metrics'] === '') throw new UsageError('--pv-metrics takes a file name (see pvrun man)');
		options.metrics = values['pv-metrics'];
	}
	return options;
}
