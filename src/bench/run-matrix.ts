// `pvrun bench --matrix FILE`: a user's matrix (matrix-file.ts) run on real
// guests: each repetition boots every scenario under every configuration (in
// rotating order), with the scenario's host CPUs, busy neighbour VMs and busy
// host processes; the guest runs the workloads from a script pvrun appends to
// the initrd, between markers the host reads off the serial console. A boot
// that fails is started once more, then skipped with its reason; boots past
// the time limit are skipped and say so. The results file is rewritten after
// every boot, so a run cut short keeps what it measured.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {bootGuest, pvrunCommand, readyLine, readyWithinMs, type Guest} from '../guest/boot.js';
import {ownCpus} from '../host/cpus.js';
import {ensureImage, writeCpio} from '../image/build.js';
import {PvrunError, UsageError, firstLine} from '../util/errors.js';
import {createProgress, type Progress} from '../util/progress.js';
import {cv, spread} from '../util/stats.js';
import {
	expandCommand,
	parseWorkloadOutput,
	runsIn,
	scenarioCpus,
	type ConfigSpec,
	type LoadedMatrix,
	type ScenarioSpec,
	type WorkloadSpec,
} from './matrix-file.js';
import {watchHostLoad} from './host-load.js';
import {measureHostSpeed} from './host-speed.js';
import {defaultResultsDir, gitCommit} from './results-dir.js';
import {
	runResultSchema,
	type CellStats,
	type RunFailure,
	type RunResult,
	type RunSample,
	type RunSkip,
	type RunSummaryRow,
	type ScenarioRecord,
} from './run-result.js';
import {withTempDir} from './tempdir.js';
import {environment, hostBefore, placeVcpus, startHostHogs, startNeighbourVm, staticPlace} from './vms.js';

export interface RunMatrixOptions {
	matrix: LoadedMatrix;
	/** Repetitions (default: the file's, else 3). */
	reps?: number;
	/** The whole run's limit in seconds (default: the file's, else none). */
	timeLimitSeconds?: number;
	/** Only these scenarios, workloads, configurations (names from the file). */
	scenarios?: string[];
	workloads?: string[];
	configs?: string[];
	/** Results folder (default bench/results/<date>-<host>-<matrix name>). */
	out?: string;
}

/** Where the guest finds the benchmark's script and the workloads' files. */
const guestDir = '/pvrun-bench';
const filesDir = `${guestDir}/files`;
/** The lines the guest script prints around each run (the host reads between them). */
const marker = 'pvrun-bench:';
/** How many of a failed run's last output lines its failure keeps. */
const outputTail = 20;

interface Planned {
	workload: WorkloadSpec;
	command: string;
	timeoutSeconds: number;
}

/** Run the matrix; writes result.json (after every boot), returns the result. */
export async function runMatrix(options: RunMatrixOptions, progress: Progress = createProgress('pvrun bench')): Promise<{result: RunResult; out: string}> {
	const started = performance.now();
	const {matrix} = options;
	// The host's speed before each boot that gave results (environment.hostSpeed).
	const bootSpeeds: number[] = [];
	const spec = matrix.spec;
	const pick = <T extends {name: string}>(all: readonly T[], names: readonly string[] | undefined, what: string): T[] => {
		if (!names) return [...all];
		for (const n of names)
			if (!all.some((x) => x.name === n)) throw new UsageError(`the matrix has no ${what} "${n}" (it has ${all.map((x) => x.name).join(', ')})`);
		return all.filter((x) => names.includes(x.name));
	};
	const scenarios = pick(spec.scenarios, options.scenarios, 'scenario');
	const workloads = pick(spec.workloads, options.workloads, 'workload');
	const configs = pick(spec.configs, options.configs, 'configuration');
	const baselineConfig = spec.baselineConfig ?? spec.configs[0]?.name ?? '';
	const reps = options.reps ?? spec.repetitions ?? 3;
	const timeLimit = options.timeLimitSeconds ?? spec.timeLimitSeconds;
	const allowed = ownCpus();
	const records = scenarios.map((s) => scenarioRecord(s, scenarioCpus(s, allowed)));
	const image = await guestImage(matrix, progress);

	const before = await hostBefore();
	const env = await environment(await gitCommit());
	const load = watchHostLoad();
	const result: RunResult = {
		schema: runResultSchema,
		date: new Date().toISOString(),
		matrix: {
			file: matrix.file,
			name: matrix.name,
			...(spec.title ? {title: spec.title} : {}),
			sha256: crypto.createHash('sha256').update(fs.readFileSync(matrix.file)).digest('hex'),
		},
		environment: {...env, ...before},
		options: {
			reps,
			...(timeLimit !== undefined ? {timeLimitSeconds: timeLimit} : {}),
			scenarios: scenarios.map((s) => s.name),
			workloads: workloads.map((w) => w.name),
			configs: configs.map((c) => c.name),
			baselineConfig,
		},
		scenarios: records,
		samples: [],
		failures: [],
		skipped: [],
		summary: [],
		complete: true,
		durationSeconds: 0,
	};
	const out = options.out !== undefined ? path.resolve(options.out) : defaultResultsDir('result.json', result.date, `-${matrix.name}`);
	fs.mkdirSync(out, {recursive: true});
	const save = () => {
		result.durationSeconds = Math.round((performance.now() - started) / 100) / 10;
		fs.writeFileSync(path.join(out, 'result.json'), `${JSON.stringify(result, null, 1)}\n`);
	};
	try {
		await withTempDir('pvrun-bench-', async (work) => {
			// One initrd per scenario and configuration: the image's, then the benchmark's files and script.
			const initrds = new Map<string, string>();
			// The longest boot so far of each scenario and configuration: whether the next fits the time limit.
			const longest = new Map<string, number>();
			for (let rep = 0; rep < reps; rep++) {
				for (const [si, scenario] of scenarios.entries()) {
					const record = records[si];
					if (!record) continue;
					const order = rotate(configs, rep);
					for (const [position, config] of order.entries()) {
						const key = `${scenario.name}/${config.name}`;
						const planned = plan(workloads, scenario, config);
						if (!planned.length) continue;
						const elapsed = (performance.now() - started) / 1000;
						if (timeLimit !== undefined && elapsed + (longest.get(key) ?? 0) > timeLimit) {
							const skip: RunSkip = {scenario: scenario.name, config: config.name, rep, reason: `time limit of ${timeLimit} s (${Math.round(elapsed)} s used)`};
							result.skipped.push(skip);
							result.complete = false;
							progress.info(`skipped rep ${rep + 1}/${reps}, scenario ${scenario.name}, ${config.name}: ${skip.reason}`);
							continue;
						}
						let initrd = initrds.get(key);
						if (!initrd) {
							const prepare = spec.prepare === undefined ? undefined : expandCommand(spec.prepare, {seconds: 0, vcpus: scenario.vcpus, files: filesDir});
							initrd = await benchInitrd(work, key.replace('/', '-'), image.initrd, planned, prepare, matrix.dir);
							initrds.set(key, initrd);
						}
						const step = progress.step(`rep ${rep + 1}/${reps}, scenario ${scenario.name}, ${config.name}`);
						const bootStarted = performance.now();
						const ctx = {scenario, record, config, rep, order: position, planned, image: {...image, initrd}, work};
						let got: BootOutcome | undefined;
						for (let attempt = 0; attempt < 2 && !got; attempt++) {
							try {
								// Before the boot and its neighbours: the host's own speed, for the gate.
								const hostSpeed = measureHostSpeed();
								got = await runBoot(ctx);
								for (const sample of got.samples) sample.hostSpeed = hostSpeed;
								if (got.samples.length) bootSpeeds.push(hostSpeed);
								// The first attempt's failure stays on record, marked as made good.
								const first = attempt ? result.failures.at(-1) : undefined;
								if (first) first.retried = true;
							} catch (error) {
								const tail = error instanceof BootFailure ? error.output : [];
								result.failures.push({scenario: scenario.name, config: config.name, rep, error: firstLine(error), ...(tail.length ? {output: tail} : {})});
								if (attempt === 0) progress.info(`rep ${rep + 1}, scenario ${scenario.name}, ${config.name}: ${firstLine(error)}; starting it again`);
								else step.fail(firstLine(error));
							}
						}
						longest.set(key, Math.max(longest.get(key) ?? 0, (performance.now() - bootStarted) / 1000));
						if (got) {
							result.samples.push(...got.samples);
							result.failures.push(...got.failures);
							if (got.failures.length)
								step.fail(
									`${got.samples.length} of ${planned.length} workloads gave results; ${got.failures.map((f) => `${f.workload}: ${f.error}`).join('; ')}`,
								);
							else step.done(`${got.samples.length} results`);
						}
						save();
					}
				}
			}
		});
	} finally {
		const during = load.stop();
		if (during) result.environment.during = during;
	}
	result.summary = summarizeRun(result.samples, workloads, baselineConfig);
	if (bootSpeeds.length) result.environment.hostSpeed = spread(bootSpeeds);
	save();
	return {result, out};
}

/** The configurations in the order repetition `rep` boots them: rotated, so none always goes first. */
export function rotate<T>(items: readonly T[], rep: number): T[] {
	const k = items.length ? rep % items.length : 0;
	return [...items.slice(k), ...items.slice(0, k)];
}

/** The workloads a scenario runs under a configuration, with their commands filled in. */
export function plan(workloads: readonly WorkloadSpec[], s: ScenarioSpec, c: ConfigSpec): Planned[] {
	return workloads
		.filter((w) => runsIn(w, s, c))
		.map((w) => {
			const seconds = w.seconds ?? 10;
			return {workload: w, command: expandCommand(w.command, {seconds, vcpus: s.vcpus, files: filesDir}), timeoutSeconds: w.timeoutSeconds ?? seconds * 3 + 30};
		});
}

export function scenarioRecord(s: ScenarioSpec, hostCpus: number[]): ScenarioRecord {
	const neighbourVms = s.neighbourVms ?? 0;
	const neighbourVcpus = s.neighbourVcpus ?? 2;
	const hostHogs = s.hostHogs === 'cpus' ? hostCpus.length : (s.hostHogs ?? 0);
	return {
		name: s.name,
		...(s.title ? {title: s.title} : {}),
		vcpus: s.vcpus,
		hostCpus,
		neighbourVms,
		neighbourVcpus,
		hostHogs,
		overcommit: Math.round(((s.vcpus + neighbourVms * neighbourVcpus + hostHogs) / hostCpus.length) * 100) / 100,
	};
}

/** The guest: pvrun's default image, or the file's kernel and initrd (relative to the file). */
async function guestImage(
	matrix: LoadedMatrix,
	progress: Progress,
): Promise<{kernel: string; initrd: string; memoryMiB?: number; append?: string[]; qemuArgs?: string[]}> {
	const image = matrix.spec.image ?? 'default';
	if (image === 'default') return ensureImage({progress: createProgress('pvrun image')});
	const kernel = path.resolve(matrix.dir, image.kernel);
	const initrd = path.resolve(matrix.dir, image.initrd);
	for (const f of [kernel, initrd])
		if (!fs.existsSync(f)) throw new UsageError(`matrix file ${matrix.file}: the image's ${f === kernel ? 'kernel' : 'initrd'} ${f} does not exist`);
	progress.info(`guest: ${kernel} with ${initrd}`);
	return {
		kernel,
		initrd,
		...(image.memoryMiB ? {memoryMiB: image.memoryMiB} : {}),
		...(image.append ? {append: image.append} : {}),
		...(image.qemuArgs ? {qemuArgs: image.qemuArgs} : {}),
	};
}

/** The guest script: wait for hints to be live (where pvhint exists), prepare, then each run between markers. */
export function guestScript(planned: readonly Planned[], prepare: string | undefined): {files: Record<string, string>} {
	const files: Record<string, string> = {};
	const lines = [
		'#!/bin/sh',
		'# Written by pvrun bench for one scenario and configuration: the runs between markers the host reads.',
		`cd ${filesDir}`,
		'limit() { if command -v timeout >/dev/null 2>&1; then timeout "$@"; else shift; "$@"; fi; }',
		'command -v pvhint >/dev/null 2>&1 && pvhint live 30000 >/dev/null 2>&1',
	];
	if (prepare) {
		files['prepare.sh'] = `${prepare}\n`;
		lines.push(`sh ${guestDir}/prepare.sh`);
	}
	for (const [i, p] of planned.entries()) {
		files[`w${i}.sh`] = `${p.command}\n`;
		const runs = (p.workload.warmupRuns ?? 0) + 1;
		for (let r = 0; r < runs; r++) {
			const what = r < runs - 1 ? 'warmup' : 'run';
			lines.push(`echo "${marker} begin ${i} ${what}"`, `limit ${p.timeoutSeconds} sh ${guestDir}/w${i}.sh`, `echo "${marker} end ${i} ${what} status $?"`);
		}
	}
	lines.push(`echo "${marker} done"`);
	files['run.sh'] = `${lines.join('\n')}\n`;
	return {files};
}

/** The image's initrd with the benchmark's script and files appended (the kernel unpacks both archives). */
async function benchInitrd(
	work: string,
	name: string,
	base: string,
	planned: readonly Planned[],
	prepare: string | undefined,
	matrixDir: string,
): Promise<string> {
	const tree = path.join(work, `tree-${name}`);
	const root = path.join(tree, guestDir.slice(1));
	fs.mkdirSync(path.join(root, 'files'), {recursive: true});
	for (const [file, text] of Object.entries(guestScript(planned, prepare).files)) fs.writeFileSync(path.join(root, file), text, {mode: 0o755});
	for (const p of planned)
		for (const f of p.workload.files ?? []) {
			const source = path.resolve(matrixDir, f.from);
			const dest = path.join(root, 'files', f.to ?? path.basename(f.from));
			fs.mkdirSync(path.dirname(dest), {recursive: true});
			try {
				fs.copyFileSync(source, dest);
			} catch (error) {
				throw new UsageError(`workload "${p.workload.name}": cannot copy ${source} into the guest: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
					cause: error,
				});
			}
			fs.chmodSync(dest, f.mode ? Number.parseInt(f.mode, 8) : fs.statSync(source).mode & 0o777);
		}
	const extra = path.join(work, `bench-${name}.cpio`);
	await writeCpio(tree, extra);
	const initrd = path.join(work, `initrd-${name}.img`);
	fs.copyFileSync(base, initrd);
	// newc archives are 4-byte aligned; the kernel skips zero padding between archives.
	const pad = (4 - (fs.statSync(initrd).size % 4)) % 4;
	fs.appendFileSync(initrd, Buffer.concat([Buffer.alloc(pad), fs.readFileSync(extra)]));
	return initrd;
}

interface BootContext {
	scenario: ScenarioSpec;
	record: ScenarioRecord;
	config: ConfigSpec;
	rep: number;
	order: number;
	planned: Planned[];
	image: {kernel: string; initrd: string; memoryMiB?: number; append?: string[]; qemuArgs?: string[]};
	work: string;
}

interface BootOutcome {
	samples: RunSample[];
	failures: RunFailure[];
}

/** A boot that failed: the error with the last lines its console showed. */
class BootFailure extends PvrunError {
	constructor(
		error: unknown,
		readonly output: string[],
	) {
		super(error instanceof Error ? error.message : String(error), {cause: error});
	}
}

/** One boot of the measured VM with the scenario's load around it. */
async function runBoot(ctx: BootContext): Promise<BootOutcome> {
	const {scenario, record, config, planned} = ctx;
	const cleanups: Array<() => Promise<void> | void> = [];
	let guest: Guest | undefined;
	try {
		const cpus = record.hostCpus;
		for (let i = 0; i < record.neighbourVms; i++) {
			const stop = await startNeighbourVm(ctx.image, {vcpus: record.neighbourVcpus, hostCpus: cpus});
			cleanups.push(stop);
		}
		if (record.hostHogs) cleanups.push(startHostHogs(record.hostHogs, cpus).stop);
		const qmpSocket = path.join(ctx.work, `qmp-${process.pid}-${ctx.rep}-${ctx.order}.sock`);
		const memoryMiB = scenario.memoryMiB ?? ctx.image.memoryMiB;
		guest = bootGuest({
			kernel: ctx.image.kernel,
			initrd: ctx.image.initrd,
			cpus: scenario.vcpus,
			...(memoryMiB ? {memoryMiB} : scenario.vcpus > 4 ? {memoryMiB: 1024} : {}),
			run: `sh,${guestDir}/run.sh`,
			hostCpus: cpus,
			...(ctx.image.append ? {append: ctx.image.append} : {}),
			qemuArgs: [...(ctx.image.qemuArgs ?? []), ...(config.kind === 'static' ? ['-qmp', `unix:${qmpSocket},server=on,wait=off`] : [])],
			...(config.kind === 'pvrun' ? {launcher: pvrunCommand(...(config.args ?? []))} : {}),
		});
		const g = guest;
		cleanups.push(() => g.stop());
		await g.waitFor(readyLine, readyWithinMs(scenario.vcpus));
		if (config.kind === 'static') await placeVcpus(qmpSocket, staticPlace(scenario.vcpus, cpus));
		const budgetMs = 60_000 + planned.reduce((sum, p) => sum + p.timeoutSeconds * ((p.workload.warmupRuns ?? 0) + 1), 0) * 1000;
		await g.waitFor(`${marker} done`, budgetMs);
		return collect(g.lines, ctx);
	} catch (error) {
		throw new BootFailure(error, (guest?.lines ?? []).slice(-outputTail));
	} finally {
		for (const c of cleanups.reverse()) await c();
	}
}

/** The samples and failed runs of one boot's console. */
export function collect(
	lines: readonly string[],
	ctx: {scenario: {name: string}; config: {name: string}; rep: number; order: number; planned: readonly Planned[]},
): BootOutcome {
	const samples: RunSample[] = [];
	const failures: RunFailure[] = [];
	const base = {scenario: ctx.scenario.name, config: ctx.config.name, rep: ctx.rep};
	for (const [i, p] of ctx.planned.entries()) {
		const begin = lines.lastIndexOf(`${marker} begin ${i} run`);
		const endAt = lines.findIndex((l, at) => at > begin && l.startsWith(`${marker} end ${i} run status `));
		const output = begin < 0 ? [] : lines.slice(begin + 1, endAt < 0 ? undefined : endAt);
		const status = endAt < 0 ? undefined : Number(lines[endAt]?.slice(`${marker} end ${i} run status `.length));
		const fail = (error: string) => failures.push({...base, workload: p.workload.name, error, output: output.slice(-outputTail)});
		if (begin < 0 || status === undefined) {
			fail('did not run to its end');
			continue;
		}
		if (status !== 0) {
			fail(status === 124 || status === 143 ? `timed out after ${p.timeoutSeconds} s` : `exited with status ${status}`);
			continue;
		}
		const values = parseWorkloadOutput(p.workload, output);
		if (!values) {
			fail('no line of its output matched the result pattern');
			continue;
		}
		const missing = p.workload.metrics.filter((m) => values[m.name] === undefined).map((m) => m.name);
		if (missing.length) fail(`no number for ${missing.join(', ')}`);
		if (Object.keys(values).length) samples.push({...base, order: ctx.order, workload: p.workload.name, values});
	}
	return {samples, failures};
}

export function cellStats(values: readonly number[]): CellStats {
	return {...spread(values), cv: cv(values)};
}

/** Per scenario, workload and metric: each configuration's repetitions, and their same-run ratios to the baseline configuration. */
export function summarizeRun(samples: readonly RunSample[], workloads: readonly WorkloadSpec[], baselineConfig: string): RunSummaryRow[] {
	const rows: RunSummaryRow[] = [];
	const scenarios = [...new Set(samples.map((s) => s.scenario))];
	for (const scenario of scenarios)
		for (const w of workloads)
			for (const m of w.metrics) {
				const mine = samples.filter((s) => s.scenario === scenario && s.workload === w.name && s.values[m.name] !== undefined);
				if (!mine.length) continue;
				const configs: Record<string, CellStats> = {};
				const ratios: Record<string, CellStats> = {};
				for (const config of [...new Set(mine.map((s) => s.config))]) {
					const of = mine.filter((s) => s.config === config);
					configs[config] = cellStats(of.map((s) => s.values[m.name] ?? 0));
					if (config === baselineConfig) continue;
					const r: number[] = [];
					for (const s of of) {
						const base = mine.find((b) => b.config === baselineConfig && b.rep === s.rep)?.values[m.name];
						if (base !== undefined && base !== 0) r.push((s.values[m.name] ?? 0) / base);
					}
					if (r.length) ratios[config] = cellStats(r);
				}
				rows.push({scenario, workload: w.name, metric: m.name, label: m.label ?? `${w.name} ${m.name}`, unit: m.unit ?? '', better: m.better, configs, ratios});
			}
	return rows;
}
