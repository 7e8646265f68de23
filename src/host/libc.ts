// Direct glibc calls through koffi, for what Node cannot do itself: pinning
// another process's threads (sched_setaffinity), their nice values
// (setpriority), mapping a shared file so that another process's writes show
// up in an ArrayBuffer without a syscall per read, and what becoming QEMU
// takes (descriptor flags, a pipe, the core-size limit, execve with a fresh
// signal state). glibc is bound lazily, once, on first use; each call after
// that is one FFI call and no allocation.
import fs from 'node:fs';
import util from 'node:util';
import koffi, {type KoffiFunc, type LibraryHandle} from 'koffi';
import {formatCpuList} from './cpus.js';
import {procStatFields} from './proc.js';
import {PinError, PvrunError, ShmError} from '../util/errors.js';

/** A file mapped MAP_SHARED into memory. */
export interface SharedMapping {
	/** The mapped bytes; reads see other processes' writes to the file, and writes go to it. */
	view: ArrayBuffer;
	/** Releases the file mapping; afterwards `view` reads zeros and writes to it go nowhere. */
	unmap(): void;
}

// cpu_set_t as glibc defines it: 1024 bits.
const CPU_SET_BYTES = 128;
const CPU_SET_BITS = CPU_SET_BYTES * 8;

// Constants from <sys/resource.h>, <sys/mman.h>, <fcntl.h> and <signal.h> on Linux.
const PRIO_PROCESS = 0;
const RLIMIT_CORE = 4;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
// mmap's failure value, (void *) -1, as koffi 3 returns pointers (BigInt).
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
const SIGTTOU = 22;

// The glibc functions pvrun uses, typed for TypeScript.
interface Libc {
	sched_setaffinity: KoffiFunc<(pid: number, size: number, mask: Uint8Array) => number>;
	sched_getaffinity: KoffiFunc<(pid: number, size: number, mask: Uint8Array) => number>;
	setpriority: KoffiFunc<(which: number, who: number, prio: number) => number>;
	getpriority: KoffiFunc<(which: number, who: number) => number>;
	sched_setscheduler: KoffiFunc<(pid: number, policy: number, param: Buffer) => number>;
	mmap: KoffiFunc<(addr: bigint | null, length: number, prot: number, flags: number, fd: number, offset: number) => bigint | null>;
	munmap: KoffiFunc<(addr: bigint, length: number) => number>;
	syscall: KoffiFunc<(nr: number, ...typedArgs: unknown[]) => number>;
	fcntl: KoffiFunc<(fd: number, cmd: number, ...typedArgs: unknown[]) => number>;
	getrlimit: KoffiFunc<(resource: number, limit: Buffer) => number>;
	setrlimit: KoffiFunc<(resource: number, limit: Buffer) => number>;
	pipe2: KoffiFunc<(fds: Int32Array, flags: number) => number>;
	signal: KoffiFunc<(signum: number, handler: null) => unknown>;
	sigprocmask: KoffiFunc<(how: number, set: Buffer, old: null) => number>;
	execve: KoffiFunc<(path: string, argv: Array<string | null>, envp: Array<string | null>) => number>;
	clock_gettime: KoffiFunc<(clock: number, tp: Buffer) => number>;
	flock: KoffiFunc<(fd: number, operation: number) => number>;
}

let bound: Libc | undefined;
// One cpu_set_t for every sched_setaffinity call, one for every sched_getaffinity call.
const setMask = Buffer.alloc(CPU_SET_BYTES);
const getMask = Buffer.alloc(CPU_SET_BYTES);
// One struct timespec (two 64-bit fields on x86-64) for every clock_gettime call.
const timespec = Buffer.alloc(16);
const CLOCK_THREAD_CPUTIME_ID = 3;

// glibc's functions, loaded and declared on first use.
function libc(): Libc {
	return (bound ??= bindLibc());
}

// Loads libc.so.6 and declares each function once.
function bindLibc(): Libc {
	let lib: LibraryHandle;
	try {
		lib = koffi.load('libc.so.6');
	} catch (error) {
		throw new PvrunError('cannot load glibc (libc.so.6) through koffi; pvrun needs Linux with glibc', {cause: error});
	}
	const fn = <T extends (...args: never[]) => unknown>(decl: string): KoffiFunc<T> => lib.func(decl) as KoffiFunc<T>;
	return {
		sched_setaffinity: fn('int sched_setaffinity(int pid, size_t size, const void *mask)'),
		sched_getaffinity: fn('int sched_getaffinity(int pid, size_t size, _Out_ void *mask)'),
		setpriority: fn('int setpriority(int which, uint32_t who, int prio)'),
		getpriority: fn('int getpriority(int which, uint32_t who)'),
		// struct sched_param: one int.
		sched_setscheduler: fn('int sched_setscheduler(int pid, int policy, const void *param)'),
		mmap: fn('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
		munmap: fn('int munmap(void *addr, size_t length)'),
		// glibc 2.36 has no sched_setattr wrapper.
		syscall: fn('long syscall(long number, ...)'),
		fcntl: fn('int fcntl(int fd, int cmd, ...)'),
		// struct rlimit: two rlim_t (unsigned 64-bit) on x86-64.
		getrlimit: fn('int getrlimit(int resource, _Out_ void *limit)'),
		setrlimit: fn('int setrlimit(int resource, const void *limit)'),
		pipe2: fn('int pipe2(_Out_ int *fds, int flags)'),
		// The handler is only ever SIG_DFL (a null pointer).
		signal: fn('void *signal(int signum, void *handler)'),
		sigprocmask: fn('int sigprocmask(int how, const void *set, void *old)'),
		execve: fn('int execve(const char *path, const char **argv, const char **envp)'),
		clock_gettime: fn('int clock_gettime(int clock, _Out_ void *tp)'),
		flock: fn('int flock(int fd, int operation)'),
	};
}

/** CPU time the calling thread has used, ns (CLOCK_THREAD_CPUTIME_ID; about a microsecond a call). */
export function threadCpuNs(): number {
	if (libc().clock_gettime(CLOCK_THREAD_CPUTIME_ID, timespec) !== 0)
		throw syscallError('clock_gettime', "cannot read this thread's CPU time", () => 'Linux has had this clock since 2.6.12', PvrunError);
	return Number(timespec.readBigInt64LE(0)) * 1e9 + Number(timespec.readBigInt64LE(8));
}

/** Restricts thread `tid` (any process's; 0 = the calling thread) to `cpus`. */
export function setThreadAffinity(tid: number, cpus: readonly number[]): void {
	checkTid(tid);
	fillMask(cpus);
	if (libc().sched_setaffinity(tid, CPU_SET_BYTES, setMask) !== 0) {
		throw syscallError('sched_setaffinity', `cannot pin thread ${tid} to CPUs ${formatCpuList(cpus)}`, pinHint);
	}
}

// Writes `cpus` as bits into setMask, rejecting CPUs a cpu_set_t cannot hold.
function fillMask(cpus: readonly number[]): void {
	if (cpus.length === 0) throw new PinError('cannot pin a thread to an empty set of CPUs; name at least one CPU');
	setMask.fill(0);
	for (const cpu of cpus) {
		if (!Number.isInteger(cpu) || cpu < 0 || cpu >= CPU_SET_BITS) {
			throw new PinError(`cannot pin to CPU ${cpu}: CPUs are integers from 0 to ${CPU_SET_BITS - 1}`);
		}
		setMask[cpu >> 3] = (setMask[cpu >> 3] ?? 0) | (1 << (cpu & 7));
	}
}

/** The CPUs thread `tid` (0 = the calling thread) may run on, ascending. */
export function getThreadAffinity(tid: number): number[] {
	checkTid(tid);
	if (libc().sched_getaffinity(tid, CPU_SET_BYTES, getMask) !== 0) {
		throw syscallError('sched_getaffinity', `cannot read the CPU affinity of thread ${tid}`, threadHint);
	}
	return maskCpus(getMask);
}

// The CPU numbers whose bits are set in a cpu_set_t.
function maskCpus(mask: Uint8Array): number[] {
	const cpus: number[] = [];
	for (let byte = 0; byte < mask.length; byte++) {
		const bits = mask[byte] ?? 0;
		if (bits === 0) continue;
		for (let bit = 0; bit < 8; bit++) if (bits & (1 << bit)) cpus.push(byte * 8 + bit);
	}
	return cpus;
}

/** A nice value is an integer from -20 to 19. */
function checkNice(nice: number): void {
	if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new PinError(`invalid nice value ${nice}: use an integer from -20 to 19`);
}

/** Sets the nice value (-20..19) of thread `tid` (0 = the calling thread). */
export function setThreadNice(tid: number, nice: number): void {
	checkTid(tid);
	checkNice(nice);
	if (libc().setpriority(PRIO_PROCESS, tid, nice) !== 0) {
		throw syscallError('setpriority', `cannot set the nice value of thread ${tid} to ${nice}`, niceHint);
	}
}

// tgkill(2) with signal 0 sends nothing: it only checks that the thread is in the group.
const SYS_tgkill = 234;

/**
 * Whether thread `tid` belongs to process `tgid` now. Thread ids are reused:
 * once a vCPU thread has exited (hot-unplug, QEMU quitting), its id may name
 * another process's thread before pvrun learns of the exit, so pvrun checks
 * this right before it changes a thread. False when the thread is gone or
 * belongs to another process; true when it exists but may not be signalled
 * (EPERM: still that process's).
 */
export function threadInProcess(tgid: number, tid: number): boolean {
	if (tid === 0) throw new PinError('invalid thread id 0: name the thread');
	checkTid(tid);
	if (!Number.isInteger(tgid) || tgid <= 0) throw new PinError(`invalid process id ${tgid}`);
	if (libc().syscall(SYS_tgkill, 'int', tgid, 'int', tid, 'int', 0) === 0) return true;
	return errnoName(koffi.errno()) === 'EPERM';
}

// sched_setattr(2): x86-64 syscall number and struct sched_attr (SCHED_ATTR_SIZE_VER1).
const SYS_sched_setattr = 314;
const SCHED_ATTR_SIZE = 56;
const SCHED_OTHER = 0;

/**
 * Makes thread `tid` (0 = the calling thread) a latency-sensitive normal
 * thread: nice value `nice` and, on kernels with EEVDF custom slices (6.12+),
 * a time slice of `sliceNs`, so that it preempts a running thread as soon as
 * it wakes instead of waiting for that thread's slice to end. Its CPU share
 * is set by `nice` alone. Older kernels ignore the slice. (pvrun puts none of
 * its JavaScript in a real-time class: docs/architecture.md.)
 */
export function setThreadLatency(tid: number, nice: number, sliceNs: number): void {
	checkTid(tid);
	checkNice(nice);
	if (!Number.isInteger(sliceNs) || sliceNs < 0 || sliceNs > 100_000_000) throw new PinError(`invalid time slice ${sliceNs} ns: use 0..100 ms`);
	const attr = Buffer.alloc(SCHED_ATTR_SIZE);
	attr.writeUInt32LE(SCHED_ATTR_SIZE, 0); // size
	attr.writeUInt32LE(SCHED_OTHER, 4); // sched_policy
	attr.writeInt32LE(nice, 16); // sched_nice
	attr.writeBigUInt64LE(BigInt(sliceNs), 24); // sched_runtime: the slice for fair tasks
	if (libc().syscall(SYS_sched_setattr, 'int', tid, 'void *', attr, 'unsigned int', 0) !== 0) {
		throw syscallError('sched_setattr', `cannot set the scheduling of thread ${tid}`, niceHint);
	}
}

const SCHED_FIFO = 1;
const SCHED_RESET_ON_FORK = 0x40000000;

/**
 * Puts thread `tid` in SCHED_FIFO at priority 1 (`fifo`), or back in
 * SCHED_OTHER with its nice value kept; its children start in SCHED_OTHER.
 */
export function setThreadFifo(tid: number, fifo: boolean): void {
	checkTid(tid);
	const param = Buffer.alloc(4);
	param.writeInt32LE(fifo ? 1 : 0, 0);
	if (libc().sched_setscheduler(tid, (fifo ? SCHED_FIFO : SCHED_OTHER) | SCHED_RESET_ON_FORK, param) !== 0) {
		throw syscallError('sched_setscheduler', `cannot put thread ${tid} in ${fifo ? 'SCHED_FIFO' : 'SCHED_OTHER'}`, niceHint);
	}
}

/** The scheduling policy of thread `tid` of process `pid` as the kernel reports it (field 41 of stat): 0 normal, 1 FIFO, 2 RR... */
export function threadPolicy(pid: number, tid: number): number {
	const fields = procStatFields(pid, tid);
	if (!fields) throw new PinError(`cannot read the scheduling policy of thread ${tid}: it does not exist (has it exited?)`);
	return Number(fields[41]);
}

/** The nice value (-20..19) of thread `tid` (0 = the calling thread). */
export function getThreadNice(tid: number): number {
	checkTid(tid);
	// getpriority returns -1 for nice -1 too; only errno tells an error apart.
	koffi.errno(0);
	const nice = libc().getpriority(PRIO_PROCESS, tid);
	if (nice === -1 && koffi.errno() !== 0) {
		throw syscallError('getpriority', `cannot read the nice value of thread ${tid}`, threadHint);
	}
	return nice;
}

/** Maps the first `size` bytes of an existing file read-write and shared, as an ArrayBuffer aliasing it. */
export function mapSharedFile(path: string, size: number): SharedMapping {
	if (!Number.isInteger(size) || size <= 0) throw new ShmError(`cannot map ${size} bytes of ${path}: give a positive whole size`);
	const fd = openForMapping(path, size);
	let address: bigint | null;
	try {
		address = libc().mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} finally {
		fs.closeSync(fd);
	}
	if (address === null || address === MAP_FAILED) {
		throw syscallError('mmap', `cannot map ${path} into memory`, () => 'check that it is a regular file on a local or tmpfs mount', ShmError);
	}
	return sharedMapping(address, size);
}

// Opens `path` O_RDWR and checks it holds at least `size` bytes (touching past its end would be SIGBUS).
function openForMapping(path: string, size: number): number {
	let fd: number;
	try {
		fd = fs.openSync(path, 'r+');
	} catch (error) {
		const code = (error as NodeJS.ErrnoException).code ?? 'error';
		throw new ShmError(`cannot open ${path} for reading and writing (${code}); create it first and check its permissions`, {cause: error});
	}
	const length = fs.fstatSync(fd).size;
	if (length < size) {
		fs.closeSync(fd);
		throw new ShmError(`cannot map ${size} bytes of ${path}: it holds only ${length}; truncate it to at least ${size} first`);
	}
	return fd;
}

// Mappings whose ArrayBuffer was collected before unmap(): released then.
const unreachable = new FinalizationRegistry<{address: bigint; size: number}>(({address, size}) => {
	libc().munmap(address, size);
});

// Wraps a mapping at `address` in a SharedMapping whose unmap() is safe to call twice.
function sharedMapping(address: bigint, size: number): SharedMapping {
	const view = koffi.view(address, size);
	const region = {address, size};
	const token = {};
	unreachable.register(view, region, token);
	let mapped = true;
	const unmap = (): void => {
		if (!mapped) return;
		mapped = false;
		// koffi's external ArrayBuffers cannot be detached, so the address range stays
		// valid: swap the file for private zero pages, freed once `view` is collected.
		const scratch = libc().mmap(address, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (scratch !== address) {
			unreachable.unregister(token);
			libc().munmap(address, size);
		}
	};
	return {view, unmap};
}

// Rejects thread ids that are not ids at all (negative, fractional, beyond pid_t).
function checkTid(tid: number): void {
	if (!Number.isInteger(tid) || tid < 0 || tid > 0x7fff_ffff) {
		throw new PinError(`invalid thread id ${tid}: use a thread id from /proc/<pid>/task, or 0 for the calling thread`);
	}
}

// The PvrunError for a failed call: what failed, errno's name, and what to do about it.
function syscallError(syscall: string, what: string, hint: (code: string) => string, Kind: typeof PvrunError = PinError): PvrunError {
	const errno = koffi.errno();
	const code = errnoName(errno);
	const cause = Object.assign(new Error(`${syscall} failed: ${code}`), {errno, code, syscall});
	return new Kind(`${what}: ${code}; ${hint(code)}`, {cause});
}

// The symbolic name of an errno value, e.g. 3 -> "ESRCH".
function errnoName(errno: number): string {
	try {
		return util.getSystemErrorName(-errno);
	} catch {
		return `errno ${errno}`;
	}
}

// What to do when a thread could not be pinned.
function pinHint(code: string): string {
	if (code === 'EINVAL') return 'name CPUs that are online and allowed by the cpuset cgroup';
	if (code === 'EPERM') return 'run pvrun as root or as the owner of the thread';
	return threadHint(code);
}

// What to do when a thread's nice value could not be set.
function niceHint(code: string): string {
	if (code === 'EACCES' || code === 'EPERM') return 'a lower nice value or a real-time class needs root (CAP_SYS_NICE)';
	return threadHint(code);
}

// What to do when a call about a thread failed.
function threadHint(code: string): string {
	if (code === 'ESRCH') return 'the thread does not exist (has it exited?)';
	return "check the thread id and pvrun's permissions";
}

/**
 * The signals Node's start-up resets (SIGPIPE and SIGXFSZ to ignored, the rest
 * to the default) and libuv resets in a child: 1..31. Real-time signals are
 * left as the caller set them, as Node left them; SIGKILL and SIGSTOP cannot be touched.
 */
const lastSignal = 31;
const SIGKILL = 9;
const SIGSTOP = 19;

/**
 * flock(2) without waiting: take `fd`'s open file description's lock (exclusive or shared),
 * or convert the one it holds. True if taken, false if another open file holds it; throws on
 * anything else (a descriptor that is not open).
 */
export function tryFlock(fd: number, exclusive: boolean): boolean {
	if (libc().flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) === 0) return true;
	const code = errnoName(koffi.errno());
	if (code === 'EWOULDBLOCK' || code === 'EAGAIN') return false;
	throw new PvrunError(`cannot lock file descriptor ${fd}: flock failed: ${code}`);
}

/** Drop `fd`'s flock(2) lock (nothing if it holds none). */
export function unflock(fd: number): void {
	libc().flock(fd, LOCK_UN);
}

/** Set FD_CLOEXEC on `fd`; false if it is not open. */
export function setCloseOnExec(fd: number): boolean {
	const {fcntl} = libc();
	const flags = fcntl(fd, F_GETFD, 'int', 0);
	if (flags < 0) return false;
	return fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC) === 0;
}

/** Clear FD_CLOEXEC on `fd` (it survives exec); false if it is not open. */
export function clearCloseOnExec(fd: number): boolean {
	const {fcntl} = libc();
	const flags = fcntl(fd, F_GETFD, 'int', 0);
	if (flags < 0) return false;
	return fcntl(fd, F_SETFD, 'int', flags & ~FD_CLOEXEC) === 0;
}

/** Set or clear O_NONBLOCK on `fd`'s open file description; false if it is not open. */
export function setNonBlocking(fd: number, on: boolean): boolean {
	const {fcntl} = libc();
	const flags = fcntl(fd, F_GETFL, 'int', 0);
	if (flags < 0) return false;
	return fcntl(fd, F_SETFL, 'int', on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) === 0;
}

/** A new pipe, both ends close-on-exec: [read end, write end]. */
export function closeOnExecPipe(): [number, number] {
	const fds = new Int32Array(2);
	if (libc().pipe2(fds, O_CLOEXEC) !== 0) throw new PvrunError(`cannot create a pipe: ${errnoName(koffi.errno())}`);
	return [fds[0] ?? -1, fds[1] ?? -1];
}

/**
 * Replace this process with `path` (argv `argv`, environment `env`), with
 * the signal state a program expects to start with: every standard signal's
 * action the default (Node ignores SIGPIPE and SIGXFSZ, and an ignored signal
 * stays ignored across exec; real-time ones as the caller left them) and none
 * blocked, as a child started by Node would have. Returns only if execve failed: then the errno's name.
 */
export function execProgram(path: string, argv: readonly string[], env: readonly string[]): string {
	const {signal, sigprocmask, execve} = libc();
	for (let n = 1; n <= lastSignal; n++) if (n !== SIGKILL && n !== SIGSTOP) signal(n, null);
	sigprocmask(SIG_SETMASK, Buffer.alloc(128), null);
	execve(path, [...argv, null], [...env, null]);
	return errnoName(koffi.errno());
}

/**
 * Block SIGTTOU for the calling thread (and threads it starts): a process outside the
 * terminal's foreground group that writes to a terminal set to stop background writers
 * (`stty tostop`) is written through instead of stopped.
 */
export function blockSigttou(): void {
	const set = Buffer.alloc(128);
	set[(SIGTTOU - 1) >> 3] = 1 << ((SIGTTOU - 1) & 7);
	libc().sigprocmask(SIG_BLOCK, set, null);
}

/** Whether `fd` is open with FD_CLOEXEC set. */
export function isCloseOnExec(fd: number): boolean {
	const flags = libc().fcntl(fd, F_GETFD, 'int', 0);
	return flags >= 0 && (flags & FD_CLOEXEC) !== 0;
}

/** Lower this process's core-size soft limit to 0 (best effort: false if it could not). */
export function disableCoreDumps(): boolean {
	try {
		const {getrlimit, setrlimit} = libc();
		const limit = Buffer.alloc(16);
		if (getrlimit(RLIMIT_CORE, limit) !== 0) return false;
		limit.writeBigUInt64LE(0n, 0);
		return setrlimit(RLIMIT_CORE, limit) === 0;
	} catch {
		return false;
	}
}
