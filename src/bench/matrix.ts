// `pvrun bench matrix`: guest workloads × oversubscription scenarios × host
// configurations (plain QEMU, static libvirt-style pinning, pvrun), repeated
// in rotating order, each configuration judged against the baselines measured
// in the same run. Writes raw results (JSON), a Markdown table and an SVG
// chart per scenario. docs/benchmarks.md explains why each cell exists.
import {spawn, type ChildProcess} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {execa} from 'execa';
import {bootGuest, pvrunCommand, readyLine, type Guest} from '../guest/boot.js';
import {ownCpus} from '../host/cpus.js';
import {setThreadAffinity} from '../host/libc.js';
import {ensureImage} from '../image/build.js';
import {connectQmp} from '../qemu/qmp.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {createProgress, type Progress} from '../util/progress.js';
import {matrixReport, summarize} from './matrix-report.js';
import type {MatrixResult, Sample, Scenario} from './matrix-result.js';
import {defaultResultsDir, gitCommit} from './results-dir.js';
import {withTempDir} from './tempdir.js';

export type {MatrixResult, Sample, Scenario, Stats, Summary} from './matrix-result.js';
export {
	configNames,
	fullOptions,
	quickOptions,
	scenarioIds,
	workloadNames,
	type ConfigName,
	type MatrixOptions,
	type ScenarioId,
	type WorkloadName,
} from './options.js';
import {configNames, workloadNames, type ConfigName, type MatrixOptions, type ScenarioId, type WorkloadName} from './options.js';

export const scenarios: Record<ScenarioId, Scenario> = {
	a: {id: 'a', title: 'one guest, 4 vCPUs on the host CPUs; busy unpinned threads beside the workload', vcpus: 4, neighbourVm: false, hostHogs: false},
	b: {id: 'b', title: 'a 2-vCPU guest beside a second VM (plain QEMU) with 2 busy vCPUs', vcpus: 2, neighbourVm: true, hostHogs: false},
	c: {id: 'c', title: 'a 2-vCPU guest beside busy host processes (one per host CPU)', vcpus: 2, neighbourVm: false, hostHogs: true},
};

/** The guest command of a workload in a scenario (commas stand for spaces), or undefined if it does not run there. */
export function workloadCommand(w: WorkloadName, s: Scenario, seconds: number, config: ConfigName): string | undefined {
	const busy = (n: number) => `-b,${Math.max(0, n)}`;
	switch (w) {
		case 'poll':
			return `pvwork,poll,-c,0,-s,${seconds},${busy(s.vcpus - 1)}`;
		case 'pingpong':
			return `pvwork,pingpong,-a,0,-c,1,-s,${seconds},${busy(s.vcpus - 2)}`;
		case 'sleeper':
			return `pvwork,sleeper,-c,0,-p,1000,-s,${seconds},${busy(s.vcpus - 1)}`;
		case 'locks':
			return `pvwork,locks,-t,${s.vcpus},-s,${seconds}`;
		case 'hintlat':
			// Only pvrun answers hints; the probe's own load is light.
			return config === 'pvrun' || config === 'pvrun-cs' ? `pvhint,wait,1,-n,${seconds * 20},-w,10,-t,2000` : undefined;
	}
}

/** The configurations in the order repetition `rep` runs them: rotated, so no configuration always goes first. */
export function rotation(rep: number, configs: readonly ConfigName[] = configNames): ConfigName[] {
	const k = rep % configs.length;
	return [...configs.slice(k), ...configs.slice(0, k)];
}

/** Parse `pvwork-result {json}` and `pvhint: k=v ...` console lines into numbers. */
export function parseResultLine(line: string): {workload: WorkloadName; values: Record<string, number>} | undefined {
	if (line.startsWith('pvwork-result ')) {
		let parsed: unknown;
		try {
			parsed = JSON.parse(line.slice('pvwork-result '.length));
		} catch {
			return undefined;
		}
		if (typeof parsed !== 'object' || parsed === null) return undefined;
		const {workload, ...rest} = parsed as Record<string, unknown>;
		if (typeof workload !== 'string' || !(workloadNames as readonly string[]).includes(workload)) return undefined;
		const values: Record<string, number> = {};
		for (const [k, v] of Object.entries(rest)) if (typeof v === 'number' && Number.isFinite(v)) values[k] = v;
		if (workload === 'poll' && values['iterPerSec'] !== undefined) values['vmWorkPerSec'] = values['iterPerSec'] + (values['burnerIterPerSec'] ?? 0);
		return {workload: workload as WorkloadName, values};
	}
	const m = /^pvhint: vcpu=\d+ (.*)$/.exec(line);
	if (m?.[1]) {
		const values: Record<string, number> = {};
		for (const [, k = '', v = ''] of m[1].matchAll(/(\w+)=([\d.]+)/g)) values[k.replace(/_(\w)/g, (_, c: string) => c.toUpperCase())] = Number(v);
		return {workload: 'hintlat', values};
	}
	return undefined;
}

/** Run the matrix; prints progress and the report, writes the results folder, returns the result. */
export async function benchMatrix(options: MatrixOptions, progress: Progress = createProgress('pvrun bench')): Promise<MatrixResult> {
	const started = performance.now();
	const commit = await gitCommit();
	const image = await ensureImage({progress: createProgress('pvrun image')});
	const samples: Sample[] = [];
	const failures: MatrixResult['failures'] = [];
	await withTempDir('pvrun-matrix-', async (work) => {
		for (let rep = 0; rep < options.reps; rep++) {
			for (const id of options.scenarios) {
				const scenario = scenarios[id];
				for (const [order, config] of rotation(rep, options.configs).entries()) {
					const step = progress.step(`rep ${rep + 1}/${options.reps}, scenario ${id}, ${config}`);
					try {
						const got = await runBoot({scenario, config, rep, order, options, image, dir: work});
						samples.push(...got);
						step.done(describe(got));
					} catch (error) {
						failures.push({scenario: id, config, rep, error: firstLine(error)});
						step.fail(firstLine(error));
					}
				}
			}
		}
	});
	const summary = summarize(samples);
	const result: MatrixResult = {
		schema: 'pvrun-bench-matrix/1',
		date: new Date().toISOString(),
		environment: await environment(commit),
		options: {
			quick: options.quick,
			reps: options.reps,
			seconds: options.seconds,
			scenarios: options.scenarios,
			workloads: options.workloads,
			configs: options.configs,
		},
		scenarios: options.scenarios.map((id) => scenarios[id]),
		samples,
		summary,
		failures,
		durationSeconds: Math.round((performance.now() - started) / 100) / 10,
	};
	const out = options.out ?? defaultResultsDir('matrix.json', result.date, options.quick ? '-quick' : '');
	fs.mkdirSync(out, {recursive: true});
	const files = await matrixReport(result);
	fs.writeFileSync(path.join(out, 'matrix.json'), `${JSON.stringify(result, null, 1)}\n`);
	for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(out, name), text);
	process.stdout.write(files['matrix.md'] ?? '');
	progress.info(
		`results: ${path.relative(process.cwd(), out) || '.'} (matrix.json, matrix.md, ${Object.keys(files)
			.filter((f) => f.endsWith('.svg'))
			.join(', ')})`,
	);
	if (failures.length) progress.info(`${failures.length} boot(s) failed; their cells are missing (see failures in matrix.json)`);
	return result;
}

function describe(got: Sample[]): string {
	const s = got.filter((x) => !x.warmup);
	const poll = s.find((x) => x.workload === 'poll')?.values['iterPerSec'];
	return `${s.length} results${poll !== undefined ? `, poll ${Math.round(poll / 1000)}k it/s` : ''}`;
}

interface BootContext {
	scenario: Scenario;
	config: ConfigName;
	rep: number;
	order: number;
	options: MatrixOptions;
	image: {kernel: string; initrd: string};
	dir: string;
}

/** One boot of the measured VM in one configuration, with the scenario's load around it. */
async function runBoot(ctx: BootContext): Promise<Sample[]> {
	const {scenario, config, options} = ctx;
	const planned = options.workloads
		.map((w) => ({w, cmd: workloadCommand(w, scenario, options.seconds, config)}))
		.filter((x): x is {w: WorkloadName; cmd: string} => x.cmd !== undefined);
	const first = planned[0];
	if (!first) return [];
	// Warm-up: the first workload for 1 s (TCG translates the code; caches fill), then each workload once.
	const warmupCmd = workloadCommand(first.w, scenario, 1, config) ?? first.cmd;
	// The guest waits for the agent and its program first (pvrun), the same 3 s in every configuration
	// and in the quick run too: without it the first workload runs before pvrun's program is attached.
	const run = ['sleep,3', warmupCmd, ...planned.map((p) => p.cmd)].join(';');
	const cleanups: Array<() => Promise<void> | void> = [];
	try {
		if (scenario.neighbourVm) cleanups.push(await startNeighbourVm(ctx.image));
		if (scenario.hostHogs) cleanups.push(startHostHogs(ownCpus().length));
		const qmpSocket = path.join(ctx.dir, `qmp-${process.pid}-${ctx.rep}-${ctx.order}.sock`);
		const guest = bootGuest({
			kernel: ctx.image.kernel,
			initrd: ctx.image.initrd,
			cpus: scenario.vcpus,
			run,
			...(config === 'pvrun' ? {launcher: pvrunCommand()} : {}),
			...(config === 'pvrun-cs' ? {launcher: pvrunCommand('--pv-cs', 'observe')} : {}),
			...(config === 'static' ? {qemuArgs: ['-qmp', `unix:${qmpSocket},server=on,wait=off`]} : {}),
		});
		cleanups.push(() => guest.stop());
		await guest.waitFor(readyLine, 60_000);
		if (config === 'static') await pinStatically(qmpSocket);
		const budgetMs = 30_000 + (planned.length + 1) * (options.seconds + 5) * 1000;
		const status = await guest.waitFor(/command exited with status/, budgetMs);
		if (!/status 0\b/.test(status))
			throw new PvrunError(
				`guest workloads failed (${status}): ${guest.lines
					.filter((l) => l.startsWith('pvwork:') || l.startsWith('pvhint:'))
					.slice(-2)
					.join(' | ')}`,
			);
		return collect(guest, ctx, planned.length);
	} finally {
		for (const c of cleanups.reverse()) await c();
	}
}

/** The result lines of one boot: the first is the warm-up. */
function collect(guest: Guest, ctx: BootContext, expected: number): Sample[] {
	const parsed = guest.lines.map(parseResultLine).filter((p) => p !== undefined);
	if (parsed.length !== expected + 1) throw new PvrunError(`expected ${expected + 1} result lines from the guest, got ${parsed.length}`);
	return parsed.map((p, i) => ({
		scenario: ctx.scenario.id,
		config: ctx.config,
		rep: ctx.rep,
		order: ctx.order,
		workload: p.workload,
		warmup: i === 0,
		values: p.values,
	}));
}

/** libvirt's <vcpupin> done by hand: vCPU i on host CPU i mod N, for the whole run. */
async function pinStatically(qmpSocket: string): Promise<void> {
	const qmp = await connectQmp(qmpSocket, {timeoutMs: 10_000});
	try {
		const cpus = ownCpus();
		for (const t of await qmp.vcpuThreads()) setThreadAffinity(t.threadId, [cpus[t.index % cpus.length] ?? 0]);
	} finally {
		await qmp.close().catch(() => {});
	}
}

/** A second VM under plain QEMU whose vCPUs are all busy; resolves once they are. Returns its stop function. */
export async function startNeighbourVm(image: {kernel: string; initrd: string}): Promise<() => Promise<void>> {
	const neighbour = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: 'pvwork,locks,-t,2,-s,3600'});
	try {
		await neighbour.waitFor(readyLine, 60_000);
	} catch (error) {
		await neighbour.stop();
		throw error;
	}
	return () => neighbour.stop();
}

/** Busy host processes, one per CPU; returns their stop function. pvrun never touches them. */
export function startHostHogs(count: number): () => void {
	const hogs: ChildProcess[] = [];
	for (let i = 0; i < count; i++) hogs.push(spawn('sh', ['-c', 'while :; do :; done'], {stdio: 'ignore'}));
	return () => {
		for (const h of hogs) h.kill('SIGKILL');
	};
}

async function environment(commit: string): Promise<MatrixResult['environment']> {
	const version = (JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {version: string}).version;
	const qemu = await execa('qemu-system-x86_64', ['--version'], {reject: false});
	return {
		host: os.hostname(),
		cpus: os.cpus().length,
		cpuModel: os.cpus()[0]?.model ?? '',
		kernel: os.release(),
		qemu: String(qemu.stdout ?? '').split('\n')[0] ?? '',
		accel: 'tcg',
		pvrun: version,
		commit,
		node: process.version,
	};
}
