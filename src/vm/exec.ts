// pvrun becomes QEMU: execve in place, so that QEMU keeps the pid its caller
// started (libvirt reads a domain's vCPU threads, CPU times and affinities
// under that pid; a shell's `$!` and `wait` see QEMU). QEMU finds the console
// and every descriptor pvrun inherited under the same numbers, the signal
// state a new program expects, and pvrun's environment.
import {PvrunError} from '../util/errors.js';
import {keepForExec} from './fds.js';
import {execProgram} from '../host/libc.js';
import {checkPrograms} from './qemu-process.js';

/**
 * Replace this process with QEMU (`qemu`: a path, or a name looked up in
 * PATH; argv[0] is `qemu` as given). `keep`: descriptors of pvrun's own that
 * QEMU must hold too. Returns only by throwing: a PvrunError with a shell's
 * status for a command that cannot run (127 not found, 126 not executable).
 */
export function execQemu(qemu: string, args: readonly string[], keep: readonly number[] = []): never {
	const file = checkPrograms(qemu);
	keepForExec(keep);
	const env = Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
	const code = execProgram(file, [qemu, ...args], env);
	throw new PvrunError(`cannot run ${file}: ${code}`, {exitCode: code === 'ENOENT' ? 127 : 126});
}
