// The two libc calls the launcher needs and Node lacks: setting a
// descriptor's close-on-exec flag and lowering the core-size limit. Bound
// through koffi on first use (src/host/libc.ts binds the pinning calls).
import koffi, {type KoffiFunc, type LibraryHandle} from 'koffi';
import {PvrunError} from '../util/errors.js';

interface Posix {
	fcntl: KoffiFunc<(fd: number, cmd: number, ...typedArgs: unknown[]) => number>;
	getrlimit: KoffiFunc<(resource: number, limit: Buffer) => number>;
	setrlimit: KoffiFunc<(resource: number, limit: Buffer) => number>;
}

// <fcntl.h>, <sys/resource.h> on Linux.
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const RLIMIT_CORE = 4;

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
