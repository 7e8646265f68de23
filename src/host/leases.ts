// Host-wide CPU leases (docs/leases.md): a host CPU that a pvrun gives one of its vCPUs as its
// own is held through a lease that every pvrun on the host sees, so two VMs never have the same
// CPU to themselves. The lease directory holds one file per CPU (`cpu<N>`), locked with
// flock(LOCK_EX) while the lease lasts: the kernel drops a dead holder's locks with its last
// descriptor, so a crashed pvrun's leases are free at once. One file per pvrun (`vm.<pid>`),
// locked the same way for its whole life, says which CPUs it may use, which it holds, and
// since when it waits for more: what the arbitration between VMs reads. Leases are taken only
// under the directory's lock (`.lock`), so a taker sees every other lease while it decides;
// they are given back without it. What is read from the directory is bounded and validated:
// any process that may write there could have written it.
import fs from 'node:fs';
import path from 'node:path';
import {tryFlock, unflock} from './libc.js';
import {PvrunError} from '../util/errors.js';

/** What a pvrun says of itself in its `vm.<pid>` file. */
export interface LeaseOwner {
	/** The pvrun process. */
	pid: number;
	qemuPid: number;
	name?: string;
	/** Its weight against other waiting VMs (--pv-share), 1 to 1000. */
	share: number;
	/** The host CPUs it may place vCPUs on. */
	cpus: number[];
	/** The CPUs it leases now. */
	held: number[];
	/** Since when (ms since the epoch) it wants more CPUs of its own than it has; absent if it does not. */
	waitingSince?: number;
	/** How many of its vCPUs ask for a CPU of their own (granted or not): the host's demand. */
	asking?: number;
}

/** What a `cpu<N>` file says of its lease. */
export interface LeaseRecord {
	cpu: number;
	pid: number;
	qemuPid: number;
	name?: string;
	vcpu: number;
	/** When it was taken, ms since the epoch. */
	since: number;
	/** Other VMs' floating vCPUs may run on it too, at a lower weight (more asking than CPUs host-wide). */
	shared?: boolean;
}

/** The lease directory: $PVRUN_LEASE_DIR, or `leases` in pvrun's runtime root (root's: /run/pvrun/leases). */
export function leaseDir(runtimeRootDir: string, env: NodeJS.ProcessEnv = process.env): string {
	const given = env['PVRUN_LEASE_DIR'];
	if (given) {
		if (!path.isAbsolute(given)) throw new PvrunError(`PVRUN_LEASE_DIR must be an absolute path, not ${JSON.stringify(given)}`);
		return path.resolve(given);
	}
	return path.join(runtimeRootDir, 'leases');
}

/** The largest file of the directory read (a record is ~150 bytes); a bigger one is ignored as garbage. */
const maxFileBytes = 4096;
/** How long a transaction waits for the directory's lock (others hold it for microseconds). */
const lockWaitMs = 20;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Whether `me` may take the free CPU `cpu` now, or must leave it to a VM that waits with a better
 * claim: fewer CPUs held for its share, then the longer wait (first come). A VM that does not
 * wait yet has waited since `now`, and loses a tie (a wait that began in the same millisecond)
 * to one that does.
 */
export function mayTake(
	cpu: number,
	me: {held: number; share: number; waitingSince?: number | undefined},
	others: readonly LeaseOwner[],
	now: number,
): boolean {
	const mine = me.held / me.share;
	const since = me.waitingSince ?? now;
	return !others.some((o) => {
		if (o.waitingSince === undefined || !o.cpus.includes(cpu)) return false;
		const theirs = o.held.length / o.share;
		return theirs < mine || (theirs === mine && (o.waitingSince < since || (o.waitingSince === since && me.waitingSince === undefined)));
	});
}

/**
 * Whether leasing `cpu` on top of `leased` would leave some other live VM without a CPU it may
 * use that nobody leases: it would have nowhere to run but on another VM's own CPUs.
 */
export function strands(cpu: number, leased: ReadonlySet<number>, others: readonly LeaseOwner[]): boolean {
	return others.some((o) => o.cpus.includes(cpu) && o.cpus.every((c) => c === cpu || leased.has(c)));
}

/** One view of the directory inside its lock: the others' leases and owners, and taking. */
export interface LeaseTransaction {
	/** CPUs (of those this pvrun may use) another pvrun leases. */
	readonly othersLeased: ReadonlySet<number>;
	/** Of those, the ones leased shared (other VMs may float on them). */
	readonly othersShared: ReadonlySet<number>;
	/** The other live pvruns (stale owner files are removed on the way). */
	readonly others: readonly LeaseOwner[];
	/** Lease `cpu` for `vcpu`, shared or not (a lease this pvrun holds is rewritten if that changes); false if somebody holds it. */
	take(cpu: number, vcpu: number, shared: boolean): boolean;
}

/** This pvrun's side of the lease directory. */
export class LeaseTable {
	private readonly fds = new Map<number, number>();
	private readonly mine = new Map<number, LeaseRecord>();
	private readonly lockFd: number;
	private readonly ownerFd: number;
	private readonly ownerFile: string;
	private waitingSince: number | undefined;
	private asking = 0;
	private askingWritten = 0;
	private closed = false;
	/** The directory's files this pvrun wrote, and when: its own writes wake its watcher too. */
	private readonly written = new Map<string, number>();

	private constructor(
		readonly dir: string,
		private readonly owner: Omit<LeaseOwner, 'held' | 'waitingSince' | 'asking'>,
	) {
		this.lockFd = openFile(path.join(dir, '.lock'));
		this.ownerFile = path.join(dir, `vm.${owner.pid}`);
		this.ownerFd = openFile(this.ownerFile);
		// Our own pid's file: a previous process with this pid is gone, whatever it left.
		if (!tryFlock(this.ownerFd, true)) {
			fs.closeSync(this.ownerFd);
			fs.closeSync(this.lockFd);
			throw new PvrunError(`${this.ownerFile} is locked by another process: is PVRUN_LEASE_DIR shared with another PID namespace?`);
		}
		this.writeOwner();
	}

	/** Open (making it if needed) the lease directory as `owner`'s. */
	static open(dir: string, owner: Omit<LeaseOwner, 'held' | 'waitingSince' | 'asking'>): LeaseTable {
		try {
			fs.mkdirSync(dir, {recursive: true, mode: 0o755});
		} catch (error) {
			throw new PvrunError(`cannot create the lease directory ${dir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {cause: error});
		}
		const stat = fs.lstatSync(dir);
		if (!stat.isDirectory()) throw new PvrunError(`will not use the lease directory ${dir}: it is not a directory`);
		if ((stat.mode & 0o002) !== 0)
			throw new PvrunError(`will not use the lease directory ${dir}: anybody may write to it (mode ${(stat.mode & 0o777).toString(8)})`);
		return new LeaseTable(dir, owner);
	}

	/** The QEMU this pvrun serves. */
	get qemuPid(): number {
		return this.owner.qemuPid;
	}

	/** The pvrun process whose locks these are. */
	get pid(): number {
		return this.owner.pid;
	}

	/** When (performance.now()) this pvrun last wrote `file` of the directory, if it ever did. */
	wroteAt(file: string): number | undefined {
		return this.written.get(file);
	}

	/** The CPUs this pvrun leases, ascending. */
	held(): number[] {
		return [...this.mine.keys()].sort((a, b) => a - b);
	}

	/** This pvrun's leases: each CPU with the vCPU it is for. */
	records(): LeaseRecord[] {
		return [...this.mine.values()].sort((a, b) => a.cpu - b.cpu);
	}

	holds(cpu: number): boolean {
		return this.mine.has(cpu);
	}

	/**
	 * Run `fn` inside the directory's lock; undefined (and `fn` not run) if another pvrun kept the
	 * lock for longer than a moment (it is stopped, say): the caller decides again later.
	 */
	transaction<T>(fn: (tx: LeaseTransaction) => T): T | undefined {
		if (this.closed) return undefined;
		const until = performance.now() + lockWaitMs;
		while (!tryFlock(this.lockFd, true)) {
			if (performance.now() > until) return undefined;
			Atomics.wait(pause, 0, 0, 0.2);
		}
		try {
			const othersLeased = new Set<number>();
			const othersShared = new Set<number>();
			for (const cpu of this.owner.cpus) {
				if (this.mine.has(cpu) || this.probe(cpu)) continue;
				othersLeased.add(cpu);
				if (parseLease(readBounded(this.fd(cpu)))?.shared === true) othersShared.add(cpu);
			}
			const others = this.readOthers();
			return fn({othersLeased, othersShared, others, take: (cpu, vcpu, shared) => this.take(cpu, vcpu, shared)});
		} finally {
			unflock(this.lockFd);
		}
	}

	/** Give `cpu`'s lease back (nothing if this pvrun does not hold it). */
	release(cpu: number): void {
		const fd = this.fds.get(cpu);
		if (fd === undefined || !this.mine.delete(cpu)) return;
		// Emptied before it is unlocked: a reader never sees a free lease that names a holder.
		// The write is also what tells the others' watchers that a CPU is free.
		fs.ftruncateSync(fd, 0);
		this.written.set(`cpu${cpu}`, performance.now());
		unflock(fd);
		this.writeOwner();
	}

	/** Say whether this pvrun waits for more CPUs of its own (from when it first did). */
	setWaiting(waiting: boolean, now = Date.now()): void {
		const next = waiting ? (this.waitingSince ?? now) : undefined;
		if (next === this.waitingSince) return;
		this.waitingSince = next;
		this.writeOwner();
	}

	get waiting(): number | undefined {
		return this.waitingSince;
	}

	/** How many of this VM's vCPUs ask for a CPU of their own, as last said. */
	get askingNow(): number {
		return this.asking;
	}

	/**
	 * Say how many of this VM's vCPUs ask for a CPU of their own; written to the owner file only
	 * with `publish` (other VMs read it; alone, the file would be rewritten for nobody).
	 */
	setAsking(n: number, publish = true): void {
		this.asking = n;
		if (publish && n !== this.askingWritten) this.writeOwner();
	}

	/** Give every lease back and remove this pvrun's file. */
	close(): void {
		if (this.closed) return;
		for (const cpu of [...this.mine.keys()]) this.release(cpu);
		this.closed = true;
		try {
			fs.unlinkSync(this.ownerFile);
		} catch {
			// already gone
		}
		for (const fd of [this.ownerFd, this.lockFd, ...this.fds.values()]) fs.closeSync(fd);
		this.fds.clear();
	}

	private fd(cpu: number): number {
		let fd = this.fds.get(cpu);
		if (fd === undefined) {
			fd = openFile(path.join(this.dir, `cpu${cpu}`));
			this.fds.set(cpu, fd);
		}
		return fd;
	}

	/** True if `cpu`'s lease is free (inside the lock nobody takes one meanwhile). */
	private probe(cpu: number): boolean {
		const fd = this.fd(cpu);
		if (!tryFlock(fd, true)) return false;
		unflock(fd);
		return true;
	}

	private take(cpu: number, vcpu: number, shared: boolean): boolean {
		const fd = this.fd(cpu);
		const had = this.mine.get(cpu);
		if (had) {
			if ((had.shared === true) !== shared || had.vcpu !== vcpu) {
				const record: LeaseRecord = {
					cpu: had.cpu,
					pid: had.pid,
					qemuPid: had.qemuPid,
					...(had.name ? {name: had.name} : {}),
					vcpu,
					since: had.since,
					...(shared ? {shared} : {}),
				};
				this.mine.set(cpu, record);
				rewrite(fd, record);
				this.written.set(`cpu${cpu}`, performance.now());
			}
			return true;
		}
		if (!tryFlock(fd, true)) return false;
		const record: LeaseRecord = {
			cpu,
			pid: this.owner.pid,
			qemuPid: this.owner.qemuPid,
			...(this.owner.name ? {name: this.owner.name} : {}),
			vcpu,
			since: Date.now(),
			...(shared ? {shared} : {}),
		};
		this.mine.set(cpu, record);
		rewrite(fd, record);
		this.written.set(`cpu${cpu}`, performance.now());
		this.writeOwner();
		return true;
	}

	private writeOwner(): void {
		if (this.closed) return;
		const own: LeaseOwner = {
			...this.owner,
			held: this.held(),
			...(this.waitingSince !== undefined ? {waitingSince: this.waitingSince} : {}),
			...(this.asking ? {asking: this.asking} : {}),
		};
		rewrite(this.ownerFd, own);
		this.askingWritten = this.asking;
	}

	/** The other live pvruns' owner files; a dead one's file (its lock is free) is removed. */
	private readOthers(): LeaseOwner[] {
		const out: LeaseOwner[] = [];
		for (const name of listDir(this.dir)) {
			const m = /^vm\.(\d+)$/.exec(name);
			if (!m || Number(m[1]) === this.owner.pid) continue;
			const file = path.join(this.dir, name);
			let fd: number;
			try {
				fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
			} catch {
				continue;
			}
			try {
				if (tryFlock(fd, false)) {
					unflock(fd);
					fs.rmSync(file, {force: true});
					continue;
				}
				const owner = parseOwner(readBounded(fd));
				if (owner) out.push(owner);
			} finally {
				fs.closeSync(fd);
			}
		}
		return out;
	}
}

/** Every lease and live owner in `dir` as a reader outside the lock sees them (pvrun status). */
export function readLeases(dir: string, locks: string = readProcLocks()): {leases: LeaseRecord[]; owners: LeaseOwner[]} {
	const held = lockedInodes(locks);
	const leases: LeaseRecord[] = [];
	const owners: LeaseOwner[] = [];
	for (const name of listDir(dir)) {
		const cpu = /^cpu(\d+)$/.exec(name);
		const vm = /^vm\.(\d+)$/.exec(name);
		if (!cpu && !vm) continue;
		let text: string;
		let ino: number;
		try {
			const fd = fs.openSync(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
			try {
				ino = fs.fstatSync(fd).ino;
				text = readBounded(fd);
			} finally {
				fs.closeSync(fd);
			}
		} catch {
			continue;
		}
		// A file nobody has locked is a free lease, or the file of a pvrun that is gone.
		if (!held.has(ino)) continue;
		if (cpu) {
			const r = parseLease(text);
			if (r && r.cpu === Number(cpu[1])) leases.push(r);
		} else {
			const o = parseOwner(text);
			if (o && o.pid === Number(vm?.[1])) owners.push(o);
		}
	}
	return {leases: leases.sort((a, b) => a.cpu - b.cpu), owners: owners.sort((a, b) => a.pid - b.pid)};
}

function readProcLocks(): string {
	try {
		return fs.readFileSync('/proc/locks', 'utf8');
	} catch {
		return '';
	}
}

/** The inode numbers /proc/locks shows a flock lock on ("1: FLOCK  ADVISORY  WRITE 123 00:1a:456 0 EOF"). */
export function lockedInodes(text: string): Set<number> {
	const inodes = new Set<number>();
	for (const line of text.split('\n')) {
		const m = /^\d+:\s+FLOCK\s+\S+\s+(?:READ|WRITE)\s+\d+\s+[0-9a-f]+:[0-9a-f]+:(\d+)\s/.exec(line);
		if (m) inodes.add(Number(m[1]));
	}
	return inodes;
}

function openFile(file: string): number {
	try {
		return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o644);
	} catch (error) {
		throw new PvrunError(`cannot open ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {cause: error});
	}
}

/**
 * Replace a file's line in place (its lock is on the inode: no rename). Written first, then cut
 * to length: a reader at any moment finds a whole line first, the old or the new, never an
 * empty file (readers parse up to the first line end).
 */
function rewrite(fd: number, value: unknown): void {
	const text = `${JSON.stringify(value)}\n`;
	fs.writeSync(fd, text, 0);
	fs.ftruncateSync(fd, Buffer.byteLength(text));
}

function readBounded(fd: number): string {
	const b = Buffer.alloc(maxFileBytes + 1);
	const n = fs.readSync(fd, b, 0, b.length, 0);
	return n > maxFileBytes ? '' : b.toString('utf8', 0, n);
}

function listDir(dir: string): string[] {
	try {
		return fs.readdirSync(dir).sort();
	} catch {
		return [];
	}
}

const isCount = (n: unknown, max = 0x7fff_ffff): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max;
const isCpuList = (l: unknown): l is number[] => Array.isArray(l) && l.length <= 4096 && l.every((c) => isCount(c, 4095));

function parseJson(text: string): Record<string, unknown> | undefined {
	// The first line: a rewrite may leave the old line's tail behind it for a moment (rewrite).
	const end = text.indexOf('\n');
	try {
		const v: unknown = JSON.parse(end < 0 ? text : text.slice(0, end));
		return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
	} catch {
		return undefined;
	}
}

/** An owner file's content, or undefined if it is not one (validated: another process wrote it). */
export function parseOwner(text: string): LeaseOwner | undefined {
	const o = parseJson(text);
	if (!o) return undefined;
	const {pid, qemuPid, name, share, cpus, held, waitingSince, asking} = o;
	if (!isCount(pid) || pid === 0 || !isCount(qemuPid) || !isCount(share, 1000) || share === 0 || !isCpuList(cpus) || !isCpuList(held)) return undefined;
	if (name !== undefined && (typeof name !== 'string' || name.length > 256)) return undefined;
	if (waitingSince !== undefined && !isCount(waitingSince, Number.MAX_SAFE_INTEGER)) return undefined;
	if (asking !== undefined && !isCount(asking, 4096)) return undefined;
	return {
		pid,
		qemuPid,
		...(name !== undefined ? {name} : {}),
		share,
		cpus,
		held,
		...(waitingSince !== undefined ? {waitingSince} : {}),
		...(asking !== undefined ? {asking} : {}),
	};
}

/** A lease file's content, or undefined. */
export function parseLease(text: string): LeaseRecord | undefined {
	const o = parseJson(text);
	if (!o) return undefined;
	const {cpu, pid, qemuPid, name, vcpu, since, shared} = o;
	if (!isCount(cpu, 4095) || !isCount(pid) || !isCount(qemuPid) || !isCount(vcpu, 4095) || !isCount(since, Number.MAX_SAFE_INTEGER)) return undefined;
	if (name !== undefined && (typeof name !== 'string' || name.length > 256)) return undefined;
	if (shared !== undefined && typeof shared !== 'boolean') return undefined;
	return {cpu, pid, qemuPid, ...(name !== undefined ? {name} : {}), vcpu, since, ...(shared ? {shared} : {})};
}
