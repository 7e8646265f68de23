// The affinity policy on a shared host (docs/leases.md): every CPU a vCPU gets as its own is
// leased in the host-wide lease directory (src/host/leases.ts) first. A VM places nothing on
// another VM's leased CPUs, grants none that is taken otherwise (isolated from the scheduler,
// or pinned to by a QEMU that is not a pvrun's), never leases the last CPU another VM could
// run on, and leaves a freed CPU to a VM that waits with a better claim. A decision that needs
// no lease it does not hold runs without the directory's lock; the others' leases are looked
// at again when a file of the directory changes, and every half second while this VM waits.
import fs from 'node:fs';
import {mayTake, strands, type LeaseOwner, type LeaseTable, type LeaseTransaction} from '../../host/leases.js';
import {cpuPreference, type CpuPreference, type CpuTopology} from '../../host/topology.js';
import type {Assignment} from './policy.js';

/** The policy with the CPUs it may place on, those it may not grant, and whether the host is crowded. */
export type LeasePolicy = (placeable: number[], floatOnly: ReadonlySet<number>, crowdedHost: boolean) => Assignment;

/** How long a lease outlives its grant unless another VM waits: a thread that pins itself again soon finds it (and the fast path's table covers it). */
export const leaseLingerMs = 2000;
/** How often a VM that waits for a CPU looks again (a crashed holder frees its leases without a file event). */
export const leaseRetryMs = 500;

export class VmLeases {
	/** The allowed CPUs the vCPUs may be placed on, as of the last look at the others' leases. */
	placeable: number[];
	/** Of those, the CPUs none of this VM's vCPUs may have as its own. */
	floatOnly: ReadonlySet<number>;
	/** The host's VMs ask for more CPUs of their own than it has to spare: every grant is shared (docs/leases.md#sharing). */
	crowdedHost = false;
	private othersWaiting = false;
	/** Other VMs lease in the directory (as of the last look): this VM's demand is theirs to read. */
	private others = false;

	/** Other VMs lease in the directory, as of the last look (alone, the fast path's table may grant any CPU). */
	get othersHere(): boolean {
		return this.others;
	}
	/** The others' leases and the taken CPUs as of the last look (what the preference reads). */
	private readonly view = {leased: new Set<number>() as ReadonlySet<number>, taken: new Set<number>() as ReadonlySet<number>};
	/** The order new grants take free CPUs in, on this host's topology (undefined: highest first). */
	readonly prefer: CpuPreference | undefined;
	private readonly lingering = new Map<number, number>();
	private watcher: fs.FSWatcher | undefined;
	private timer: NodeJS.Timeout | undefined;
	private debounce: NodeJS.Timeout | undefined;

	constructor(
		readonly table: LeaseTable,
		private readonly allowed: readonly number[],
		private readonly share: number,
		/** Host CPUs no VM should lease (src/host/taken.ts), given the QEMU pids of the VMs that lease here. */
		private readonly taken: (leasing: ReadonlySet<number>) => ReadonlySet<number> = () => new Set(),
		/** The host's topology, and the NUMA node of the VM's memory where known. */
		topology?: {cpus: CpuTopology; memNode?: number | undefined},
	) {
		this.placeable = [...allowed];
		this.floatOnly = new Set();
		this.prefer = topology ? cpuPreference(topology.cpus, this.view, topology.memNode) : undefined;
	}

	/**
	 * What a look inside the directory's lock finds, remembered for the decisions without it: the
	 * taken CPUs (this VM's and the others' QEMUs left out), whether others are here and wait,
	 * whether the host is crowded with this VM asking `asking`, the others' exclusive leases
	 * (theirs alone; their shared ones may be floated on, not granted), and every exclusive lease.
	 */
	private look(tx: LeaseTransaction, asking: number): {taken: number[]; othersExclusive: number[]; exclusiveLeased: Set<number>} {
		const taken = this.taken(new Set([this.table.qemuPid, ...tx.others.map((o) => o.qemuPid)]));
		this.view.leased = tx.othersLeased;
		this.view.taken = taken;
		this.othersWaiting = tx.others.some((o) => o.waitingSince !== undefined);
		this.others = tx.others.length > 0;
		this.crowdedHost = this.crowdedWith(tx.others, asking);
		this.table.setAsking(asking, this.others);
		const othersExclusive = [...tx.othersLeased].filter((c) => !tx.othersShared.has(c));
		return {taken: [...taken], othersExclusive, exclusiveLeased: new Set([...othersExclusive, ...this.exclusiveHeld()])};
	}

	/** The CPUs this VM leases (the fast path's table grants no other). */
	held(): ReadonlySet<number> {
		return new Set(this.table.held());
	}

	/** Whether the host's VMs ask for more CPUs of their own than it has to spare: then every lease is shared. */
	private crowdedWith(others: readonly LeaseOwner[], asking: number): boolean {
		if (others.length === 0) return false;
		const cpus = new Set([...this.allowed, ...others.flatMap((o) => o.cpus)]);
		return asking + others.reduce((n, o) => n + (o.asking ?? 0), 0) > cpus.size - 1;
	}

	/** This VM's exclusive leases: the only ones that can leave another VM nowhere to float. */
	private exclusiveHeld(): number[] {
		return this.table
			.records()
			.filter((r) => r.shared !== true)
			.map((r) => r.cpu);
	}

	/**
	 * The policy's assignment with the leases it needs taken; undefined if the directory's lock
	 * could not be had (the caller keeps what it has and decides again soon).
	 */
	decide(policy: LeasePolicy, now = Date.now()): Assignment | undefined {
		// Most decisions grant only CPUs this VM leases already, as it leases them, deny nothing and
		// ask as much as before: no lock, no look.
		const cheap = policy(this.placeable, this.floatOnly, this.crowdedHost);
		const asking = cheap.exclusive.size + cheap.denied.length;
		const same =
			asking === this.table.askingNow &&
			cheap.denied.length === 0 &&
			this.table.waiting === undefined &&
			[...cheap.exclusive.values()].every((e) => this.table.holds(e.pcpu)) &&
			this.table.records().every((r) => (r.shared === true) === this.crowdedHost);
		if (same) return cheap;
		return this.table.transaction((tx) => {
			const {taken, othersExclusive, exclusiveLeased} = this.look(tx, asking);
			const crowded = this.crowdedHost;
			const blocked = new Set(othersExclusive);
			const floatOnly = new Set([...taken, ...tx.othersShared]);
			let a = cheap;
			for (let round = 0; round <= this.allowed.length; round++) {
				const placeable = this.allowed.filter((c) => !blocked.has(c));
				// Other VMs lease every CPU this one may use: it runs on them, with none of its own.
				if (placeable.length === 0) {
					a = policy([...this.allowed], new Set(this.allowed), crowded);
					this.remember([...this.allowed], new Set(this.allowed));
					break;
				}
				a = policy(placeable, floatOnly, crowded);
				let refused = false;
				for (const [vcpu, e] of a.exclusive) {
					const mine = this.table.holds(e.pcpu);
					const me = {held: this.table.held().length, share: this.share, waitingSince: this.table.waiting};
					// Left to a VM with a better claim, or (exclusive) another VM's last CPU: floated on, not granted.
					const strandsOne = !crowded && strands(e.pcpu, new Set([...exclusiveLeased].filter((c) => c !== e.pcpu)), tx.others);
					if ((!mine && !mayTake(e.pcpu, me, tx.others, now)) || strandsOne) floatOnly.add(e.pcpu);
					else if (tx.take(e.pcpu, vcpu, crowded)) {
						if (crowded) exclusiveLeased.delete(e.pcpu);
						else exclusiveLeased.add(e.pcpu);
						continue;
					} else blocked.add(e.pcpu);
					refused = true;
				}
				this.remember(placeable, floatOnly);
				if (!refused) break;
			}
			// It waits if the others' leases cost it a grant it would have had.
			const limited = blocked.size > 0 || floatOnly.size > taken.length;
			const ideal = limited ? policy([...this.allowed], new Set(taken), crowded) : a;
			this.table.setWaiting(ideal.exclusive.size > a.exclusive.size, now);
			return a;
		});
	}

	/**
	 * Lease the CPUs `a` grants that this VM does not hold yet (the fast path granted them while
	 * the VM was alone); false if another VM took one first or the lock was busy: decide again.
	 */
	lease(a: Assignment): boolean {
		const missing = [...a.exclusive].filter(([, e]) => !this.table.holds(e.pcpu));
		if (missing.length === 0) return true;
		return (
			this.table.transaction((tx) => {
				this.others = tx.others.length > 0;
				return missing.every(([vcpu, e]) => tx.take(e.pcpu, vcpu, this.crowdedHost));
			}) === true
		);
	}

	/** Look at the others' leases again (no lease taken); true if what this VM may use changed. */
	refresh(): boolean {
		// Whether other VMs lease here too: the fast path's table grants only leased CPUs then.
		const state = () => `${this.placeable.join()}|${[...this.floatOnly].join()}|${this.crowdedHost}|${this.others}`;
		const before = state();
		const done = this.table.transaction((tx) => {
			const {taken, othersExclusive, exclusiveLeased} = this.look(tx, this.table.askingNow);
			const placeable = this.allowed.filter((c) => !othersExclusive.includes(c));
			const stranding = this.crowdedHost ? [] : placeable.filter((c) => !this.table.holds(c) && strands(c, exclusiveLeased, tx.others));
			const floatOnly = new Set([...taken, ...tx.othersShared, ...stranding]);
			this.remember(placeable.length ? placeable : [...this.allowed], placeable.length ? floatOnly : new Set(this.allowed));
			return true;
		});
		return done === true && before !== state();
	}

	/**
	 * After `a` is applied: leases it does not grant are given back, at once if another VM waits,
	 * else after leaseLingerMs (the caller calls settle again then).
	 */
	settle(a: Assignment, now = performance.now()): void {
		const granted = new Set([...a.exclusive.values()].map((e) => e.pcpu));
		for (const cpu of this.table.held()) {
			if (granted.has(cpu)) {
				this.lingering.delete(cpu);
				continue;
			}
			const since = this.lingering.get(cpu) ?? now;
			this.lingering.set(cpu, since);
			if (this.expired(since, now)) {
				this.table.release(cpu);
				this.lingering.delete(cpu);
			}
		}
		// What this VM asks now, for the others' view of the host's demand (a write only if it changed).
		this.table.setAsking(a.exclusive.size + a.denied.length, this.others);
	}

	/** True while a lease outlives its grant (the caller settles again when it is due). */
	get lingers(): boolean {
		return this.lingering.size > 0;
	}

	/** True if a lease that outlived its grant is to be given back now (settle would). */
	due(now = performance.now()): boolean {
		return [...this.lingering.values()].some((since) => this.expired(since, now));
	}

	/** A lease that outlived its grant since `since` goes back: at once if another VM waits, else after leaseLingerMs. */
	private expired(since: number, now: number): boolean {
		return this.othersWaiting || now - since >= leaseLingerMs;
	}

	/**
	 * Call `onChange` when the others' leases may have changed: a file of the directory changed
	 * (coalesced over 10 ms), or, while this VM waits or lingers, every leaseRetryMs.
	 */
	watch(onChange: () => void): void {
		const fire = () => {
			this.debounce = undefined;
			onChange();
		};
		// This pvrun's own writes wake the watcher too: its owner file, and a lease file it wrote a
		// moment ago (inotify reports a write after it is done: 100 ms is ample) say nothing new.
		const own = (file: string | null) => {
			if (file === `vm.${this.table.pid}` || file === '.lock') return true;
			const at = file ? this.table.wroteAt(file) : undefined;
			return at !== undefined && performance.now() - at < 100;
		};
		try {
			this.watcher = fs.watch(this.table.dir, (_event, file) => {
				if (!own(file)) this.debounce ??= setTimeout(fire, 10);
			});
			this.watcher.on('error', () => undefined);
		} catch {
			// No inotify (an exotic file system): the timer below still looks while it matters.
		}
		this.timer = setInterval(() => {
			if (this.table.waiting !== undefined || this.lingers) onChange();
		}, leaseRetryMs);
		this.timer.unref();
	}

	/** Stop watching and give every lease back. */
	close(): void {
		this.watcher?.close();
		clearInterval(this.timer);
		clearTimeout(this.debounce);
		this.table.close();
	}

	private remember(placeable: number[], floatOnly: ReadonlySet<number>): void {
		this.placeable = placeable;
		this.floatOnly = new Set(floatOnly);
	}
}
