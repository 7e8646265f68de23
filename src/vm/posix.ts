// The libc calls the launcher needs and Node lacks: a descriptor's
// close-on-exec and status flags, a pipe, the core-size limit, and execve
// with the signal state a freshly started program expects. Bound through
// koffi on first use (src/host/libc.ts binds the pinning calls).
import util from 'node:util';
import koffi, {type KoffiFunc, type LibraryHandle} from 'koffi';
import {PvrunError} from '../util/errors.js';

interface Posix {
	fcntl: KoffiFunc<(fd: number, cmd: number, ...typedArgs: unknown[]) => number>;
	getrlimit: KoffiFunc<(resource: number, limit: Buffer) => number>;
	setrlimit: KoffiFunc<(resource: number, limit: Buffer) => number>;
	pipe2: KoffiFunc<(fds: Int32Array, flags: number) => number>;
	signal: KoffiFunc<(signum: number, handler: null) => unknown>;
	sigprocmask: KoffiFunc<(how: number, set: Buffer, old: null) => number>;
	execve: KoffiFunc<(path: string, argv: Array<string | null>, envp: Array<string | null>) => number>;
}

// <fcntl.h>, <sys/resource.h> on Linux.
const F_GETFD = 1;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const RLIMIT_CORE = 4;
const SIG_SETMASK = 2;
/** Signal numbers 1..64 (Linux's real-time signals included); SIGKILL and SIGSTOP cannot be touched. */
const lastSignal = 64;
const SIGKILL = 9;
const SIGSTOP = 19;

let bound: Posix | undefined;

function posix(): Posix {
	if (bound) return bound;
	let lib: LibraryHandle;
	try {
		lib = koffi.load('libc.so.6');
	} catch (error) {
		throw new PvrunError('cannot load glibc (libc.so.6) through koffi; pvrun needs Linux with glibc', {cause: error});
	}
	bound = {
		fcntl: lib.func('int fcntl(int fd, int cmd, ...)') as Posix['fcntl'],
		// struct rlimit: two rlim_t (unsigned 64-bit) on x86-64.
		getrlimit: lib.func('int getrlimit(int resource, _Out_ void *limit)') as Posix['getrlimit'],
		setrlimit: lib.func('int setrlimit(int resource, const void *limit)') as Posix['setrlimit'],
		pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)') as Posix['pipe2'],
		// The handler is only ever SIG_DFL (a null pointer).
		signal: lib.func('void *signal(int signum, void *handler)') as Posix['signal'],
		sigprocmask: lib.func('int sigprocmask(int how, const void *set, void *old)') as Posix['sigprocmask'],
		execve: lib.func('int execve(const char *path, const char **argv, const char **envp)') as Posix['execve'],
	};
	return bound;
}

/** Set FD_CLOEXEC on `fd`; false if it is not open. */
export function setCloseOnExec(fd: number): boolean {
	const {fcntl} = posix();
	const flags = fcntl(fd, F_GETFD, 'int', 0);
	if (flags < 0) return false;
	return fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC) === 0;
}

/** Clear FD_CLOEXEC on `fd` (it survives exec); false if it is not open. */
export function clearCloseOnExec(fd: number): boolean {
	const {fcntl} = posix();
	const flags = fcntl(fd, F_GETFD, 'int', 0);
	if (flags < 0) return false;
	return fcntl(fd, F_SETFD, 'int', flags & ~FD_CLOEXEC) === 0;
}

/** Set or clear O_NONBLOCK on `fd`'s open file description; false if it is not open. */
export function setNonBlocking(fd: number, on: boolean): boolean {
	const {fcntl} = posix();
	const flags = fcntl(fd, F_GETFL, 'int', 0);
	if (flags < 0) return false;
	return fcntl(fd, F_SETFL, 'int', on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) === 0;
}

/** A new pipe, both ends close-on-exec: [read end, write end]. */
export function closeOnExecPipe(): [number, number] {
	const fds = new Int32Array(2);
	if (posix().pipe2(fds, O_CLOEXEC) !== 0) throw new PvrunError(`cannot create a pipe: ${errnoName(koffi.errno())}`);
	return [fds[0] ?? -1, fds[1] ?? -1];
}

/**
 * Replace this process with `path` (argv `argv`, environment `env`), with
 * the signal state a program expects to start with: every signal's action
 * the default (Node ignores SIGPIPE and SIGXFSZ, and an ignored signal stays
 * ignored across exec) and none blocked, as a child started by Node would
 * have. Returns only if execve failed: then the errno's name.
 */
export function execProgram(path: string, argv: readonly string[], env: readonly string[]): string {
	const {signal, sigprocmask, execve} = posix();
	for (let n = 1; n <= lastSignal; n++) if (n !== SIGKILL && n !== SIGSTOP) signal(n, null);
	sigprocmask(SIG_SETMASK, Buffer.alloc(128), null);
	execve(path, [...argv, null], [...env, null]);
	return errnoName(koffi.errno());
}

// The symbolic name of an errno value, e.g. 2 -> "ENOENT".
function errnoName(errno: number): string {
	try {
		return util.getSystemErrorName(-errno);
	} catch {
		return `errno ${errno}`;
	}
}

/** Whether `fd` is open with FD_CLOEXEC set. */
export function isCloseOnExec(fd: number): boolean {
	const flags = posix().fcntl(fd, F_GETFD, 'int', 0);
	return flags >= 0 && (flags & FD_CLOEXEC) !== 0;
}

/** Lower this process's core-size soft limit to 0 (best effort: false if it could not). */
export function disableCoreDumps(): boolean {
	try {
		const {getrlimit, setrlimit} = posix();
		const limit = Buffer.alloc(16);
		if (getrlimit(RLIMIT_CORE, limit) !== 0) return false;
		limit.writeBigUInt64LE(0n, 0);
		return setrlimit(RLIMIT_CORE, limit) === 0;
	} catch {
		return false;
	}
}
