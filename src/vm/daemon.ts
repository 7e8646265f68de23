// `-daemonize`: QEMU's first process exits once the VM is initialised and the
// VM runs on detached; pvrun does the same. The pvrun the user started (the
// front) starts a detached pvrun process (the daemon, in a session of its
// own, stdio on /dev/null, cwd /), which creates the run directory and shared
// memory; the front then runs QEMU's first process with the console and the
// inherited descriptors, and when it exits tells the daemon its status and
// exits with it. On success the daemon reads the daemonized QEMU's pid from
// the pidfile and serves the hint channel until that process is gone, then
// removes its files. Killing the daemon leaves QEMU running (the user asked
// for a daemon); its SIGTERM/SIGINT/SIGHUP stop the hint channel only.
import {spawn, type ChildProcess} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type {VmConfig} from './config.js';
import {firstLine, PvrunError, UsageError} from '../util/errors.js';
import {packageRoot} from '../util/paths.js';
import {EventLog} from './event-log.js';
import {keepFromChildren} from './fds.js';
import type {VmPlan} from './plan.js';
import {processAlive} from '../host/proc.js';
import {checkPrograms, endLike, forwardedSignals, spawnQemu, waitForExit, watchPid, type ExitStatus} from './qemu-process.js';
import type {ShmArea} from '../shm/area.js';
import {HintSession, createRunFiles, removeRunFiles} from './session.js';
import {writeVmState} from './state.js';

/** Front → daemon. */
type ToDaemon = {type: 'prepare'; plan: VmPlan; log?: string} | {type: 'started'; status: ExitStatus} | {type: 'abort'};
/** Daemon → front. */
type FromDaemon =
	| {type: 'prepared'}
	| {type: 'error'; message: string; exitCode: number}
	| {type: 'watching'; qemuPid: number}
	| {type: 'done'}
	| {type: 'failed'; message: string};

/** The daemon's entry script (built next to this module). */
const daemonEntry = path.join(packageRoot, 'dist', 'vm', 'daemon-entry.js');
/** Bounds on the daemon's answers: creating its files, and taking over an initialised QEMU. */
const prepareMs = 15_000;
const takeOverMs = 15_000;

/**
 * The front: run a QEMU that daemonizes, with a detached pvrun serving its
 * hint channel. `planFor` plans the VM for the daemon's pid (run directories
 * are named after the pvrun process that owns them). Resolves to the status
 * of QEMU's first process, as QEMU's parent would see it.
 */
export async function runDaemonized(options: VmConfig, planFor: (ownerPid: number) => VmPlan): Promise<number> {
	checkPrograms(options.qemu);
	// The daemon must not hold the descriptors meant for QEMU (libvirt's monitor socket...).
	keepFromChildren();
	const daemon = spawn(process.execPath, [daemonEntry], {detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'], cwd: '/'});
	const link = new DaemonLink(daemon);
	try {
		const plan = planFor(await link.spawned());
		const prepare: ToDaemon = {type: 'prepare', plan};
		if (options.log !== undefined) prepare.log = path.resolve(options.log);
		const answer = await link.ask(prepare, prepareMs, 'creating its files');
		if (answer.type === 'error') throw new PvrunError(answer.message, {exitCode: answer.exitCode});
		if (plan.accelNote) process.stderr.write(`pvrun: accelerator: ${plan.accelNote}\n`);
		const status = await waitForExit(spawnQemu(options.qemu, plan.args), () => {});
		const result = await link
			.ask({type: 'started', status}, takeOverMs, 'taking over the VM')
			.catch((error: unknown) => ({type: 'failed' as const, message: firstLine(error)}));
		if (result.type === 'failed') process.stderr.write(`pvrun: ${result.message}\n`);
		// A daemon that serves no VM (QEMU failed, or taking over did) exits: the command returns after it.
		await link.close(result.type === 'watching' ? 0 : 5000);
		return endLike(status);
	} catch (error) {
		// No QEMU will come: the daemon removes its files and exits; wait for that.
		if (link.running) await link.ask({type: 'abort'}, 5000, 'removing its files').catch(() => undefined);
		await link.close(5000);
		throw error;
	}
}

/** The front's end of the IPC channel to the daemon. */
class DaemonLink {
	private readonly inbox: FromDaemon[] = [];
	private waiter: (() => void) | undefined;
	private ended: string | undefined;
	private readonly exited: Promise<void>;

	constructor(private readonly daemon: ChildProcess) {
		daemon.on('message', (m: FromDaemon) => {
			this.inbox.push(m);
			this.waiter?.();
		});
		const end = (why: string) => {
			this.ended ??= why;
			this.waiter?.();
		};
		daemon.on('error', (error) => end(`pvrun's detached process: ${error.message}`));
		daemon.once('disconnect', () => end("pvrun's detached process went away"));
		this.exited = new Promise((resolve) => {
			daemon.once('exit', (code, signal) => {
				end(`pvrun's detached process exited (${signal ?? `status ${code ?? '?'}`})`);
				resolve();
			});
		});
	}

	get running(): boolean {
		return this.daemon.pid !== undefined && this.daemon.exitCode === null && this.daemon.signalCode === null;
	}

	/** The daemon's pid once it runs. */
	spawned(): Promise<number> {
		return new Promise((resolve, reject) => {
			if (this.daemon.pid !== undefined) resolve(this.daemon.pid);
			else this.daemon.once('error', (error) => reject(new PvrunError(`cannot start pvrun's detached process: ${error.message}`, {cause: error})));
		});
	}

	/** Send `message` and wait up to `ms` for the daemon's answer. */
	ask(message: ToDaemon, ms: number, what: string): Promise<FromDaemon> {
		if (this.ended === undefined) this.daemon.send(message);
		return new Promise((resolve, reject) => {
			const done = (settle: () => void) => {
				clearTimeout(timer);
				this.waiter = undefined;
				settle();
			};
			const check = () => {
				const m = this.inbox.shift();
				if (m !== undefined) done(() => resolve(m));
				else if (this.ended !== undefined) done(() => reject(new PvrunError(`${this.ended} while ${what}`)));
			};
			const timer = setTimeout(() => done(() => reject(new PvrunError(`pvrun's detached process did not answer within ${ms} ms while ${what}`))), ms);
			this.waiter = check;
			check();
		});
	}

	/** Let the daemon go: disconnect, and wait up to `ms` for it to exit (it does unless it serves a VM). */
	async close(ms: number): Promise<void> {
		if (this.daemon.connected) this.daemon.disconnect();
		this.daemon.unref();
		if (ms > 0 && this.running) {
			let timer: NodeJS.Timeout | undefined;
			await Promise.race([this.exited, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
			clearTimeout(timer);
		}
	}
}

/** The daemon: the detached pvrun process (src/vm/daemon-entry.ts runs this). */
export function serveDaemon(): void {
	let prepared: {plan: VmPlan; area: ShmArea; log: EventLog; logFile: string | undefined} | undefined;
	let session: HintSession | undefined;
	const send = (m: FromDaemon): Promise<void> =>
		new Promise((resolve) => {
			if (!process.connected || !process.send) resolve();
			else process.send(m, undefined, undefined, () => resolve());
		});
	/** Remove the run directory and shared memory (the session does, once it runs), then exit. */
	const exit = (code: number): never => {
		if (session) session.close();
		else if (prepared) {
			removeRunFiles(prepared.plan, prepared.area);
			prepared.log.close();
		}
		process.exit(code);
	};
	const handle = async (m: ToDaemon): Promise<void> => {
		if (m.type === 'prepare') {
			let log: EventLog;
			try {
				log = new EventLog(m.log, false, {vm: m.plan.id});
			} catch (error) {
				throw new UsageError(`cannot open the event log ${m.log ?? ''} (--pv-log): ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`, {
					cause: error,
				});
			}
			try {
				prepared = {plan: m.plan, area: createRunFiles(m.plan), log, logFile: m.log};
			} catch (error) {
				log.close();
				throw error;
			}
			await send({type: 'prepared'});
			return;
		}
		if (m.type === 'abort' || m.status.code !== 0 || m.status.signal) {
			// QEMU did not start or initialise: nothing runs; the front waits for the files to be gone.
			if (prepared) removeRunFiles(prepared.plan, prepared.area);
			prepared?.log.close();
			prepared = undefined;
			await send({type: 'done'});
			process.exit(0);
		}
		const qemuPid = await serve(2000);
		await send({type: 'watching', qemuPid});
		process.disconnect();
	};
	/** Serve the daemonized QEMU (once) until it is gone; resolves to its pid. */
	let serving: Promise<number> | undefined;
	const serve = (waitMs: number): Promise<number> =>
		(serving ??= (async () => {
			if (!prepared) throw new PvrunError('QEMU started before pvrun had its files');
			const {plan, area, log, logFile} = prepared;
			const qemuPid = await readPidFile(plan.pidFile ?? '', plan.shmPath, waitMs);
			writeVmState(plan, logFile === undefined ? {} : {log: logFile}, {qemuPid});
			const qemu = watchPid(qemuPid);
			session = new HintSession(plan, area, qemu, log);
			void qemu.exited.then(() => exit(0));
			return qemuPid;
		})());
	process.on('message', (m: ToDaemon) => {
		handle(m).catch(async (error: unknown) => {
			const message = firstLine(error);
			if (m.type === 'prepare') await send({type: 'error', message, exitCode: error instanceof PvrunError ? error.exitCode : 70});
			else {
				prepared?.log.write('warning', {message});
				await send({type: 'failed', message: `${message}; the VM runs without hints`});
			}
			exit(1);
		});
	});
	// The front gone early (killed): QEMU may still come up; serve it if it does (within 30 s), else clean up.
	process.once('disconnect', () => {
		if (!prepared) exit(0);
		serve(30_000).catch(() => exit(0));
	});
	// Asked to stop: the hint channel stops, the daemonized QEMU runs on.
	for (const s of forwardedSignals) process.on(s, () => exit(0));
	// Nobody sees this process's stderr: whatever goes wrong, the files go.
	process.on('uncaughtException', (error) => {
		prepared?.log.write('warning', {message: `internal error: ${firstLine(error)}`});
		exit(70);
	});
}

/**
 * QEMU's pid from its pidfile (written before its first process exits),
 * waiting up to `ms` for it. The process must be this VM's QEMU: its command
 * line names `shmPath` (an old pidfile may name anything).
 */
async function readPidFile(file: string, shmPath: string, ms: number): Promise<number> {
	const deadline = performance.now() + ms;
	let last: string;
	for (;;) {
		try {
			const text = fs.readFileSync(file, 'utf8').trim();
			const pid = Number(text);
			if (Number.isSafeInteger(pid) && pid > 1 && processAlive(pid) && commandLine(pid).includes(shmPath)) return pid;
			last = `${JSON.stringify(text.slice(0, 20))} is not this VM's running QEMU`;
		} catch (error) {
			last = (error as NodeJS.ErrnoException).code ?? firstLine(error);
		}
		if (performance.now() >= deadline) throw new PvrunError(`cannot read QEMU's pid from ${file}: ${last}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

/** The command line of process `pid`, arguments joined by NULs ('' if unreadable). */
function commandLine(pid: number): string {
	try {
		return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
	} catch {
		return '';
	}
}
