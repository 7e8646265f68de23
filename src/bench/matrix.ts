// `pvrun bench matrix`: guest workloads × oversubscription scenarios × host
// configurations (plain QEMU, static libvirt-style pinning, pvrun), repeated
// in rotating order, each configuration judged against the baselines measured
// in the same run. Writes raw results (JSON), a Markdown table and an SVG
// chart per scenario. docs/benchmarks.md explains why each cell exists.
import fs from 'node:fs';
import path from 'node:path';
import {bootGuest, pvrunCommand, readyLine, readyWithinMs, type Guest} from '../guest/boot.js';
import {ownCpus, threadCpusAllowed} from '../host/cpus.js';
import {processThreads} from '../host/proc.js';
import {ensureImage} from '../image/build.js';
import {PvrunError, firstLine} from '../util/errors.js';
import {createProgress, type Progress} from '../util/progress.js';
import {jainIndex} from '../util/stats.js';
import {busyHostWarning, matrixReport, quickWarning, summarize} from './matrix-report.js';
import type {MatrixResult, Sample, Scenario} from './matrix-result.js';
import {defaultResultsDir, gitCommit} from './results-dir.js';
import {withTempDir} from './tempdir.js';
import {environment, hostBefore, placeVcpus, startHostHogs, startNeighbourVm, staticPlace} from './vms.js';

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
	d: {id: 'd', title: 'one guest, 4 vCPUs, beside busy host processes (one per host CPU)', vcpus: 4, neighbourVm: false, hostHogs: true},
	e: {id: 'e', title: 'a big guest: 16 vCPUs, all busy but the workload’s; poll and the hint latency', vcpus: 16, neighbourVm: false, hostHogs: false},
	f: {id: 'f', title: 'a big guest: 64 vCPUs, all busy but the workload’s; poll and the hint latency', vcpus: 64, neighbourVm: false, hostHogs: false},
	g: {
		id: 'g',
		title: 'two 2-vCPU guests side by side, both hinting (a pinned poller and a busy thread each): 4 vCPUs on the host CPUs',
		vcpus: 2,
		neighbourVm: false,
		hostHogs: false,
		pair: true,
	},
};

/** The big VMs' scenarios measure what grows with the vCPU count: a pinned poller's share, and the hint path. */
const bigVmWorkloads: readonly WorkloadName[] = ['poll', 'hintlat'];
/** A guest with more vCPUs than this is a big VM: only bigVmWorkloads, and 1 GiB of memory (64 vCPUs' per-CPU areas). */
const smallVmVcpus = 4;

/** The critical-section workloads: threads = vCPUs, in the scenarios whose guest has more vCPUs than the host has CPUs. */
const csWorkloads: readonly WorkloadName[] = ['uspin', 'klock'];

/** The pvrun launchers of the configurations that run under pvrun. */
const pvrunArgs: Partial<Record<ConfigName, string[]>> = {pvrun: [], 'pvrun-cs': ['--pv-cs', 'observe'], 'pvrun-act': ['--pv-cs', 'act']};

/**
 * The ceiling configuration (docs/benchmarks.md#the-ceiling): the best the machine allows a
 * workload. Lock-bound workloads: no overcommit, a guest with as many vCPUs (and threads) as
 * the host CPUs it may fairly have. The others: the oracle static placement, each vCPU's thread
 * pinned where the workload's pinned threads want it (nice 19 for the vCPUs that must share).
 */
export type Ceiling = {kind: 'nooc'; vcpus: number} | {kind: 'oracle'; place: Array<{cpus: number[]; nice: number}>};

export function ceilingOf(w: WorkloadName, s: Scenario, hostCpus: readonly number[]): Ceiling | undefined {
	const n = hostCpus.length;
	const shared = s.neighbourVm || s.hostHogs;
	switch (w) {
		case 'uspin':
		case 'klock':
		case 'locks':
			// Beside a neighbour as busy as the host's CPUs, the guest's fair part is half of them.
			return {kind: 'nooc', vcpus: Math.max(1, Math.min(s.vcpus, shared ? Math.floor(n / 2) : n))};
		case 'poll':
		case 'sleeper':
		case 'pingpong': {
			// vCPU 0 (and 1 for pingpong) with a CPU of its own while the guest has more vCPUs than the
			// host has CPUs and nobody else shares them; otherwise vCPU i on CPU i, as static pinning.
			const own = w === 'pingpong' ? 2 : 1;
			if (shared || s.vcpus <= n || n <= own) return {kind: 'oracle', place: staticPlace(s.vcpus, hostCpus)};
			return {
				kind: 'oracle',
				place: Array.from({length: s.vcpus}, (_, v) => (v < own ? {cpus: [hostCpus[v] ?? 0], nice: 0} : {cpus: hostCpus.slice(own), nice: 19})),
			};
		}
		case 'hintlat':
			return undefined;
	}
}

/**
 * The guest command of a workload in a scenario (commas stand for spaces), or undefined if it does
 * not run there; `threads`: the lock-bound workloads' threads (the guest's vCPUs).
 */
export function workloadCommand(w: WorkloadName, s: Scenario, seconds: number, config: ConfigName, quick = false, threads = s.vcpus): string | undefined {
	const busy = (n: number) => `-b,${Math.max(0, n)}`;
	// Scenario d exists for the critical-section workloads; they run where vCPUs outnumber host CPUs.
	if (csWorkloads.includes(w) ? s.vcpus < 4 : s.id === 'd') return undefined;
	if (s.vcpus > smallVmVcpus && !bigVmWorkloads.includes(w)) return undefined;
	if (s.pair && w !== 'poll') return undefined;
	switch (w) {
		case 'uspin':
			// pvwork's lists take + (commas are spaces here). The quick run: one length, two locks.
			return `pvwork,uspin,-t,${threads},-l,${quick ? 'spin+pvcs' : 'spin+spin-cs+mutex+pvcs'},-w,${quick ? '10' : '1+10+50'},-s,${seconds}`;
		case 'klock':
			return `pvwork,klock,-t,${threads},-s,${seconds}`;
		case 'poll':
			return `pvwork,poll,-c,0,-s,${seconds},${busy(s.vcpus - 1)}`;
		case 'pingpong':
			return `pvwork,pingpong,-a,0,-c,1,-s,${seconds},${busy(s.vcpus - 2)}`;
		case 'sleeper':
			return `pvwork,sleeper,-c,0,-p,1000,-s,${seconds},${busy(s.vcpus - 1)}`;
		case 'locks':
			return `pvwork,locks,-t,${threads},-s,${seconds}`;
		case 'hintlat':
			// Only pvrun answers hints; the probe's own load is light. A big VM's hints are fewer
			// (a decision there costs pvrun more of its CPU share, --pv-guest-cpu, so they wait
			// longer for it) and time out after 10 s (the guest's own scheduler, beside its busy
			// vCPUs, delays a round trip by up to seconds under TCG).
			if (!pvrunArgs[config]) return undefined;
			return s.vcpus > smallVmVcpus ? `pvhint,wait,1,-n,${seconds * 2},-w,2,-t,10000` : `pvhint,wait,1,-n,${seconds * 20},-w,10,-t,2000`;
	}
}

/** How many runs of its -s seconds a guest command makes: uspin one per lock and length (lists joined by +), the others one. */
export function runsIn(cmd: string): number {
	const list = (flag: string) => (new RegExp(`,${flag},([^,]+)`).exec(cmd)?.[1] ?? '').split('+').length;
	return cmd.startsWith('pvwork,uspin,') ? list('-l') * list('-w') : 1;
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
		const {workload, runs, ...rest} = parsed as Record<string, unknown>;
		if (typeof workload !== 'string' || !(workloadNames as readonly string[]).includes(workload)) return undefined;
		const values: Record<string, number> = {};
		for (const [k, v] of Object.entries(rest)) if (typeof v === 'number' && Number.isFinite(v)) values[k] = v;
		// uspin: one run per lock and length, as "<lock>-<workUs>.<field>".
		if (Array.isArray(runs))
			for (const run of runs as unknown[]) {
				if (typeof run !== 'object' || run === null) continue;
				const {lock, workUs, ...fields} = run as Record<string, unknown>;
				if (typeof lock !== 'string' || !/^[a-z-]+$/.test(lock) || typeof workUs !== 'number') continue;
				for (const [k, v] of Object.entries(fields)) if (typeof v === 'number' && Number.isFinite(v)) values[`${lock}-${workUs}.${k}`] = v;
			}
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
	// Before anything of the run's own: what else the host is running.
	const before = await hostBefore();
	const commit = await gitCommit();
	const image = await ensureImage({progress: createProgress('pvrun image')});
	const samples: Sample[] = [];
	const failures: MatrixResult['failures'] = [];
	await withTempDir('pvrun-matrix-', async (work) => {
		for (let rep = 0; rep < options.reps; rep++) {
			for (const id of options.scenarios) {
				const scenario = scenarios[id];
				for (const [order, config] of rotation(rep, options.scenarioConfigs?.[id] ?? options.configs).entries()) {
					const step = progress.step(`rep ${rep + 1}/${options.reps}, scenario ${id}, ${config}`);
					try {
						const got = await runBoot({scenario, config, rep, order, options, image, dir: work});
						samples.push(...got);
						step.done(describe(got));
					} catch (error) {
						const tail = error instanceof BootFailure ? error.consoleTail : [];
						// The whole message: a boot that hung says where (its console's last lines, its threads, its vCPUs).
						const said = (error instanceof Error ? error.message : String(error)).slice(0, failureMessageChars);
						failures.push({scenario: id, config, rep, error: said, ...(tail.length ? {console: tail} : {})});
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
		environment: {...(await environment(commit)), ...before},
		options: {
			quick: options.quick,
			reps: options.reps,
			seconds: options.seconds,
			scenarios: options.scenarios,
			workloads: options.workloads,
			configs: options.configs,
			...(options.scenarioConfigs ? {scenarioConfigs: options.scenarioConfigs} : {}),
		},
		scenarios: options.scenarios.map((id) => scenarios[id]),
		samples,
		summary,
		failures,
		durationSeconds: Math.round((performance.now() - started) / 100) / 10,
	};
	const out = options.out !== undefined ? path.resolve(options.out) : defaultResultsDir('matrix.json', result.date, options.quick ? '-quick' : '');
	fs.mkdirSync(out, {recursive: true});
	const files = await matrixReport(result);
	fs.writeFileSync(path.join(out, 'matrix.json'), `${JSON.stringify(result, null, 1)}\n`);
	for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(out, name), text);
	process.stdout.write(files['matrix.md'] ?? '');
	// (A run without plain QEMU has no chart: its charts are ratios to plain.)
	const written = ['matrix.json', 'matrix.md', ...Object.keys(files).filter((f) => f.endsWith('.svg'))];
	progress.info(`results: ${path.resolve(out)} (${written.join(', ')})`);
	if (failures.length) progress.info(`${failures.length} boot(s) failed; their cells are missing (see failures in matrix.json)`);
	const busy = busyHostWarning(result.environment);
	if (busy) progress.info(busy);
	if (options.quick) progress.info(quickWarning);
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

/** One configuration in one scenario: one boot (the ceiling: one per kind of ceiling its workloads have). */
async function runBoot(ctx: BootContext): Promise<Sample[]> {
	const {scenario, config, options} = ctx;
	if (config !== 'ceiling') {
		const planned = options.workloads
			.map((w) => ({w, cmd: workloadCommand(w, scenario, options.seconds, config, options.quick)}))
			.filter((x): x is Planned => x.cmd !== undefined);
		return bootOnce(ctx, {vcpus: scenario.vcpus, planned, ...(pvrunArgs[config] ? {launcher: pvrunCommand(...(pvrunArgs[config] ?? []))} : {})});
	}
	const cpus = ownCpus();
	const nooc: Planned[] = [];
	const oracle: Planned[] = [];
	let vcpus = scenario.vcpus;
	let place: Array<{cpus: number[]; nice: number}> | undefined;
	for (const w of options.workloads) {
		const c = ceilingOf(w, scenario, cpus);
		if (!c) continue;
		if (c.kind === 'nooc') {
			vcpus = c.vcpus;
			const cmd = workloadCommand(w, scenario, options.seconds, config, options.quick, c.vcpus);
			if (cmd) nooc.push({w, cmd});
		} else {
			place = c.place;
			const cmd = workloadCommand(w, scenario, options.seconds, config, options.quick);
			if (cmd) oracle.push({w, cmd});
		}
	}
	const out: Sample[] = [];
	if (nooc.length) out.push(...(await bootOnce(ctx, {vcpus, planned: nooc})));
	if (oracle.length && place) out.push(...(await bootOnce(ctx, {vcpus: scenario.vcpus, planned: oracle, place})));
	return out;
}

interface Planned {
	w: WorkloadName;
	cmd: string;
}

interface BootPlan {
	vcpus: number;
	planned: Planned[];
	/** Run through pvrun (this command) rather than QEMU. */
	launcher?: string[];
	/** Where each vCPU's thread goes once the guest is up (static pinning, the oracle). */
	place?: Array<{cpus: number[]; nice: number}>;
}

/** A boot that failed once its guest had started: the error with the last lines its console showed. */
class BootFailure extends PvrunError {
	constructor(
		error: unknown,
		readonly consoleTail: string[],
	) {
		super(error instanceof Error ? error.message : String(error), {cause: error});
	}
}

/** How many of a failed boot's last console lines its failure record keeps, and of its message's characters. */
const failureConsoleLines = 20;
const failureMessageChars = 8000;

/** One boot of the measured VM, with the scenario's load around it. */
async function bootOnce(ctx: BootContext, plan: BootPlan): Promise<Sample[]> {
	const {scenario, config, options} = ctx;
	const {planned} = plan;
	const first = planned[0];
	if (!first) return [];
	// The guest waits for the agent and its program first (pvrun), the same 3 s in every configuration:
	// without it the first workload runs before pvrun's program is attached. Then a warm-up: the first
	// workload for 1 s (TCG translates the code; caches fill), then each workload once. The quick run,
	// which measures nothing, waits only until the program is attached (at once under plain QEMU), and
	// warms nothing up.
	const lead = options.quick ? ['pvhint,live,30000'] : ['sleep,3', first.cmd.replace(/,-s,[\d.]+/, ',-s,1')];
	const run = [...lead, ...planned.map((p) => p.cmd)].join(';');
	const cleanups: Array<() => Promise<void> | void> = [];
	// The guest's console so far, kept with the error if the boot fails.
	let consoleLines: readonly string[] = [];
	try {
		// The quick run boots the neighbour beside the measured VM rather than before it.
		let neighbour: Promise<() => Promise<void>> | undefined;
		if (scenario.neighbourVm) {
			neighbour = startNeighbourVm(ctx.image);
			neighbour.catch(() => undefined); // awaited below; a failed start stops its VM itself
			cleanups.push(async () => (await neighbour?.catch(() => undefined))?.());
			if (!options.quick) await neighbour;
		}
		const hogs = scenario.hostHogs ? startHostHogs(ownCpus().length) : undefined;
		if (hogs) cleanups.push(hogs.stop);
		const place = plan.place ?? (config === 'static' ? staticPlace(plan.vcpus) : undefined);
		// A pair scenario boots two VMs alike, side by side.
		const sockets = Array.from({length: scenario.pair ? 2 : 1}, (_, i) => path.join(ctx.dir, `qmp-${process.pid}-${ctx.rep}-${ctx.order}-${i}.sock`));
		const guests = sockets.map((qmpSocket) => {
			const guest = bootGuest({
				kernel: ctx.image.kernel,
				initrd: ctx.image.initrd,
				cpus: plan.vcpus,
				...(plan.vcpus > smallVmVcpus ? {memoryMiB: 1024} : {}),
				run,
				...(plan.launcher ? {launcher: plan.launcher} : {}),
				...(place ? {qemuArgs: ['-qmp', `unix:${qmpSocket},server=on,wait=off`]} : {}),
			});
			cleanups.push(() => guest.stop());
			return guest;
		});
		const [guest] = guests;
		if (!guest) return [];
		consoleLines = guest.lines;
		for (const g of guests) await g.waitFor(readyLine, readyWithinMs(plan.vcpus));
		await neighbour;
		if (place) for (const qmpSocket of sockets) await placeVcpus(qmpSocket, place);
		// Two VMs under pvrun: whether a host CPU is ever any vCPU's own in both at once (docs/leases.md).
		const conflicts = scenario.pair && plan.launcher ? watchExclusive(guests.map((g) => g.pid)) : undefined;
		cleanups.push(() => void conflicts?.stop());
		const hogsAt = hogs?.cpuNs();
		const startedAt = performance.now();
		// Each run of `seconds` (uspin runs one per lock and length), the warm-up's of 1 s, and 5 s of slack each.
		const budgetMs = 30_000 + (runsIn(first.cmd) * 6 + planned.reduce((sum, p) => sum + runsIn(p.cmd) * (options.seconds + 5), 0)) * 1000;
		for (const g of guests) {
			const status = await g.waitFor(/command exited with status/, budgetMs);
			if (!/status 0\b/.test(status))
				throw new PvrunError(
					`guest workloads failed (${status}): ${g.lines
						.filter((l) => l.startsWith('pvwork:') || l.startsWith('pvhint:'))
						.slice(-2)
						.join(' | ')}`,
				);
		}
		const each = guests.map((g) => collect(g, ctx, planned.length, !options.quick));
		const samples = scenario.pair ? pairSamples(each, conflicts?.stop()) : (each[0] ?? []);
		// The busy host processes' share of the host's CPUs while the guest ran its workloads (%).
		if (hogs && hogsAt !== undefined) {
			const share = (100 * (hogs.cpuNs() - hogsAt)) / ((performance.now() - startedAt) * 1e6 * ownCpus().length);
			for (const s of samples) if (!s.warmup) s.values['neighbourCpuShare'] = Math.round(share * 10) / 10;
		}
		return samples;
	} catch (error) {
		// Up to what QEMU's monitor said when asked where the vCPUs of a hung boot were (in the message).
		const monitor = consoleLines.findIndex((l) => /^QEMU \d.* monitor - type 'help'|^\(qemu\) /.test(l));
		throw new BootFailure(error, consoleLines.slice(0, monitor < 0 ? undefined : monitor).slice(-failureConsoleLines));
	} finally {
		for (const c of cleanups.reverse()) await c();
	}
}

/** The result lines of one boot: the first is the warm-up's, if there was one. */
function collect(guest: Guest, ctx: BootContext, expected: number, warmedUp: boolean): Sample[] {
	const parsed = guest.lines.map(parseResultLine).filter((p) => p !== undefined);
	const lines = expected + (warmedUp ? 1 : 0);
	if (parsed.length !== lines) throw new PvrunError(`expected ${lines} result lines from the guest, got ${parsed.length}`);
	return parsed.map((p, i) => ({
		scenario: ctx.scenario.id,
		config: ctx.config,
		rep: ctx.rep,
		order: ctx.order,
		workload: p.workload,
		warmup: warmedUp && i === 0,
		values: p.values,
	}));
}

/**
 * One sample per workload from a pair's two VMs: each VM's values as vm1.* and vm2.*, Jain's
 * fairness index of their poll iterations, and (under pvrun) the samples in which a host CPU
 * was a vCPU's own in both VMs at once.
 */
export function pairSamples(each: readonly Sample[][], conflicts?: {samples: number; conflicts: number}): Sample[] {
	const [one = [], two = []] = each;
	return one.map((a, i) => {
		const b = two[i];
		const values: Record<string, number> = {};
		for (const [k, v] of Object.entries(a.values)) values[`vm1.${k}`] = v;
		for (const [k, v] of Object.entries(b?.values ?? {})) values[`vm2.${k}`] = v;
		const j = jainIndex([a.values['iterPerSec'] ?? 0, b?.values['iterPerSec'] ?? 0]);
		if (j !== undefined) values['jain'] = Math.round(j * 10_000) / 10_000;
		if (conflicts && !a.warmup) {
			values['exclusiveConflicts'] = conflicts.conflicts;
			values['exclusiveSamples'] = conflicts.samples;
		}
		return {...a, values};
	});
}

/** The host CPUs that some vCPU thread of QEMU `pid` has to itself: its only CPU, and no other vCPU thread's. */
export function exclusiveCpus(pid: number): Set<number> {
	const masks: number[][] = [];
	for (const tid of processThreads(pid)) {
		try {
			if (!/^CPU \d+\//.test(fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'))) continue;
			masks.push(threadCpusAllowed(pid, tid));
		} catch {
			// gone meanwhile
		}
	}
	const own = new Set<number>();
	for (const [i, m] of masks.entries()) {
		const [cpu] = m;
		if (m.length === 1 && cpu !== undefined && masks.every((o, j) => j === i || !o.includes(cpu))) own.add(cpu);
	}
	return own;
}

/** The host CPUs that a vCPU thread has to itself in two of the QEMUs `pids`, read in that order. */
export function exclusiveClashes(pids: readonly number[]): Set<number> {
	const seen = new Set<number>();
	const both = new Set<number>();
	for (const pid of pids)
		for (const cpu of exclusiveCpus(pid)) {
			if (seen.has(cpu)) both.add(cpu);
			seen.add(cpu);
		}
	return both;
}

/**
 * Every 100 ms until stopped: whether some host CPU is a vCPU's own in two of the QEMUs `pids`
 * at once. Each QEMU's threads are read a few ms apart: a CPU handed from one VM to the other
 * in between would look owned by both. A clash counts when a second look, in the reverse
 * order, sees it too (a handover back and forth within one sample's few ms does not happen).
 */
function watchExclusive(pids: readonly number[]): {stop: () => {samples: number; conflicts: number}} {
	let samples = 0;
	let conflicts = 0;
	const timer = setInterval(() => {
		samples++;
		const first = exclusiveClashes(pids);
		if (first.size === 0) return;
		const again = exclusiveClashes([...pids].reverse());
		if ([...first].some((cpu) => again.has(cpu))) conflicts++;
	}, 100);
	return {
		stop: () => {
			clearInterval(timer);
			return {samples, conflicts};
		},
	};
}
