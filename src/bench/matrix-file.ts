// A benchmark matrix described in a file (`pvrun bench --matrix FILE`): a
// user's guest workloads, scenarios and configurations, checked against
// bench/schema/matrix-file.schema.json and then for what a schema cannot say
// (names that must exist, a regular expression that must compile, pvrun
// options pvrun takes). docs/ci.md describes the format.
import fs from 'node:fs';
import path from 'node:path';
import {Ajv, type ErrorObject} from 'ajv';
import {parseCpuList} from '../host/cpus.js';
import {UsageError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';

export interface MetricSpec {
	name: string;
	label?: string;
	unit?: string;
	better: 'higher' | 'lower';
}

export interface WorkloadSpec {
	name: string;
	command: string;
	seconds?: number;
	timeoutSeconds?: number;
	warmupRuns?: number;
	files?: Array<{from: string; to?: string; mode?: string}>;
	result: {regex: string} | {json: string};
	metrics: MetricSpec[];
	scenarios?: string[];
	configs?: string[];
	minVcpus?: number;
	maxVcpus?: number;
}

export interface ScenarioSpec {
	name: string;
	title?: string;
	vcpus: number;
	memoryMiB?: number;
	hostCpus?: number | string;
	neighbourVms?: number;
	neighbourVcpus?: number;
	hostHogs?: number | 'cpus';
}

export interface ConfigSpec {
	name: string;
	kind: 'plain' | 'static' | 'pvrun';
	args?: string[];
}

export interface ImageFileSpec {
	kernel: string;
	initrd: string;
	memoryMiB?: number;
	append?: string[];
	qemuArgs?: string[];
}

export interface MatrixFile {
	format: 'pvrun-matrix/1';
	name?: string;
	title?: string;
	image?: 'default' | ImageFileSpec;
	repetitions?: number;
	timeLimitSeconds?: number;
	baselineConfig?: string;
	gate?: {threshold?: number; alpha?: number; mode?: 'all' | 'ratios'};
	prepare?: string;
	workloads: WorkloadSpec[];
	scenarios: ScenarioSpec[];
	configs: ConfigSpec[];
}

/** A matrix file, checked, with where it came from (relative paths in it are relative to its folder). */
export interface LoadedMatrix {
	spec: MatrixFile;
	file: string;
	dir: string;
	/** The matrix's name: its own, or the file's name without .json. */
	name: string;
}

export const matrixFileSchemaPath = path.join(packageRoot, 'bench', 'schema', 'matrix-file.schema.json');

let validator: ReturnType<Ajv['compile']> | undefined;
function validate(raw: unknown): readonly ErrorObject[] {
	if (!validator) {
		const schema = JSON.parse(fs.readFileSync(matrixFileSchemaPath, 'utf8')) as object;
		validator = new Ajv({allErrors: true, strict: false}).compile(schema);
	}
	return validator(raw) ? [] : (validator.errors ?? []);
}

/** Checks a configuration's pvrun options (the command line's parser); throws what is wrong. */
export type PvArgsCheck = (args: readonly string[]) => void;

/** Read and check a matrix file; any defect is one UsageError line naming the file and the place. */
export function loadMatrixFile(file: string, checkPvArgs?: PvArgsCheck): LoadedMatrix {
	let text: string;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch (error) {
		throw new UsageError(`cannot read matrix file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {cause: error});
	}
	let raw: unknown;
	try {
		raw = JSON.parse(text);
	} catch (error) {
		throw new UsageError(`matrix file ${file} is not JSON: ${(error as Error).message}`, {cause: error});
	}
	const spec = checkMatrix(raw, file, checkPvArgs);
	return {spec, file: path.resolve(file), dir: path.dirname(path.resolve(file)), name: spec.name ?? path.basename(file).replace(/\.json$/, '')};
}

/** Check a parsed matrix: the schema, then the cross-references. */
export function checkMatrix(raw: unknown, where: string, checkPvArgs?: PvArgsCheck): MatrixFile {
	const errors = validate(raw);
	const first = mostUseful(errors);
	if (first) {
		const at = first.instancePath || '/';
		const extra = first.keyword === 'additionalProperties' ? ` "${String(first.params['additionalProperty'])}"` : '';
		const allowed = first.keyword === 'enum' ? ` (${(first.params['allowedValues'] as unknown[]).join(', ')})` : '';
		throw new UsageError(`matrix file ${where}: ${at}: ${first.message ?? 'invalid'}${extra}${allowed}`);
	}
	const spec = raw as MatrixFile;
	const fail = (what: string): never => {
		throw new UsageError(`matrix file ${where}: ${what}`);
	};
	for (const [list, label] of [
		[spec.workloads, 'workload'],
		[spec.scenarios, 'scenario'],
		[spec.configs, 'configuration'],
	] as const) {
		const seen = new Set<string>();
		for (const item of list) {
			if (seen.has(item.name)) fail(`two ${label}s are named "${item.name}"`);
			seen.add(item.name);
		}
	}
	const scenarioNames = new Set(spec.scenarios.map((s) => s.name));
	const configNames = new Set(spec.configs.map((c) => c.name));
	if (spec.baselineConfig !== undefined && !configNames.has(spec.baselineConfig)) fail(`baselineConfig "${spec.baselineConfig}" is not a configuration`);
	for (const w of spec.workloads) {
		for (const s of w.scenarios ?? []) if (!scenarioNames.has(s)) fail(`workload "${w.name}": no scenario "${s}"`);
		for (const c of w.configs ?? []) if (!configNames.has(c)) fail(`workload "${w.name}": no configuration "${c}"`);
		const metricNames = new Set<string>();
		for (const m of w.metrics) {
			if (metricNames.has(m.name)) fail(`workload "${w.name}": metric "${m.name}" twice`);
			metricNames.add(m.name);
		}
		if ('regex' in w.result) {
			let re: RegExp;
			try {
				re = new RegExp(w.result.regex);
			} catch (error) {
				return fail(`workload "${w.name}": the regular expression does not compile: ${(error as Error).message}`);
			}
			const groups = new Set(groupNames(re.source));
			const single = w.metrics.length === 1 && groups.size === 0;
			if (!single) for (const m of w.metrics) if (!groups.has(m.name)) fail(`workload "${w.name}": the regular expression has no group named "${m.name}"`);
		}
		for (const f of w.files ?? [])
			if (path.isAbsolute(f.to ?? '') || (f.to ?? '').split('/').includes('..')) fail(`workload "${w.name}": bad file destination "${f.to}"`);
		if (w.minVcpus !== undefined && w.maxVcpus !== undefined && w.minVcpus > w.maxVcpus) fail(`workload "${w.name}": minVcpus above maxVcpus`);
	}
	for (const s of spec.scenarios)
		if (typeof s.hostCpus === 'string') {
			try {
				parseCpuList(s.hostCpus);
			} catch {
				fail(`scenario "${s.name}": bad hostCpus "${s.hostCpus}"`);
			}
		}
	for (const c of spec.configs) {
		if (c.kind !== 'pvrun' && c.args?.length) fail(`configuration "${c.name}": args are pvrun's options; kind is ${c.kind}`);
		if (c.kind === 'pvrun') {
			try {
				checkPvArgs?.(c.args ?? []);
			} catch (error) {
				fail(`configuration "${c.name}": ${(error as Error).message.replace(/ \(see pvrun --help\)$/, '')}`);
			}
		}
	}
	return spec;
}

/** The named groups of a regular expression's source. */
function groupNames(source: string): string[] {
	return [...source.matchAll(/\(\?<([A-Za-z_][A-Za-z0-9_]*)>/g)].map((m) => m[1] ?? '');
}

/**
 * The error a user can act on: the deepest; of a oneOf's branches, one whose type matched (a
 * string that fails the list pattern says more than "must be integer").
 */
function mostUseful(errors: readonly ErrorObject[]): ErrorObject | undefined {
	const specific = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if');
	const pool = specific.length ? specific : errors;
	const rank = (e: ErrorObject) => e.instancePath.split('/').length * 2 + (e.keyword === 'type' || e.keyword === 'const' ? 0 : 1);
	return [...pool].sort((a, b) => rank(b) - rank(a))[0];
}

/** A workload's command with its placeholders filled in. */
export function expandCommand(command: string, values: {seconds: number; vcpus: number; files: string}): string {
	return command.replace(/\{(seconds|vcpus|files)(?:-(\d+))?\}/g, (_, key: string, minus: string | undefined) => {
		if (key === 'files') return values.files;
		const v = key === 'seconds' ? values.seconds : values.vcpus;
		return String(minus === undefined ? v : Math.max(0, v - Number(minus)));
	});
}

/** Whether a workload runs in a scenario under a configuration. */
export function runsIn(w: WorkloadSpec, s: ScenarioSpec, c: ConfigSpec): boolean {
	if (w.scenarios && !w.scenarios.includes(s.name)) return false;
	if (w.configs && !w.configs.includes(c.name)) return false;
	if (w.minVcpus !== undefined && s.vcpus < w.minVcpus) return false;
	if (w.maxVcpus !== undefined && s.vcpus > w.maxVcpus) return false;
	return true;
}

/** The host CPUs a scenario's VMs run on, out of `allowed` (pvrun's own). */
export function scenarioCpus(s: ScenarioSpec, allowed: readonly number[]): number[] {
	if (s.hostCpus === undefined) return [...allowed];
	if (typeof s.hostCpus === 'number') {
		if (s.hostCpus > allowed.length) throw new UsageError(`scenario "${s.name}" asks for ${s.hostCpus} host CPUs; this host allows ${allowed.length}`);
		return allowed.slice(0, s.hostCpus);
	}
	const list = parseCpuList(s.hostCpus);
	const outside = list.filter((c) => !allowed.includes(c));
	if (outside.length) throw new UsageError(`scenario "${s.name}": host CPU ${outside.join(',')} is not one pvrun may use (allowed: ${allowed.join(',')})`);
	return list;
}

/**
 * The numbers of one workload's output: the first line the regular expression matches (its
 * named groups, or its first group for a single metric), or the first line that is a JSON
 * object after the prefix (keys with dots reach into objects and arrays). Only finite numbers.
 */
export function parseWorkloadOutput(w: WorkloadSpec, lines: readonly string[]): Record<string, number> | undefined {
	if ('regex' in w.result) {
		const re = new RegExp(w.result.regex);
		for (const line of lines) {
			const m = re.exec(line);
			if (!m) continue;
			const values: Record<string, number> = {};
			for (const metric of w.metrics) {
				const text = m.groups?.[metric.name] ?? (w.metrics.length === 1 && !m.groups ? m[1] : undefined);
				const v = text === undefined ? NaN : Number(text);
				if (Number.isFinite(v)) values[metric.name] = v;
			}
			return values;
		}
		return undefined;
	}
	const prefix = w.result.json;
	for (const line of lines) {
		if (!line.startsWith(prefix)) continue;
		const rest = line.slice(prefix.length).trim();
		if (!rest.startsWith('{')) continue;
		let parsed: unknown;
		try {
			parsed = JSON.parse(rest);
		} catch {
			continue;
		}
		const values: Record<string, number> = {};
		for (const metric of w.metrics) {
			const v = dig(parsed, metric.name);
			if (typeof v === 'number' && Number.isFinite(v)) values[metric.name] = v;
		}
		return values;
	}
	return undefined;
}

function dig(value: unknown, key: string): unknown {
	let at: unknown = value;
	for (const part of key.split('.')) {
		if (typeof at !== 'object' || at === null || !Object.hasOwn(at, part)) return undefined;
		at = (at as Record<string, unknown>)[part];
	}
	return at;
}
