// Real syscalls against a real child process and a real /dev/shm file: pinning,
// nice values, errno reporting, and a shared mapping seen from both sides.
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import {execa} from 'execa';
import t, {type Test} from 'tap';
import {formatCpuList, ownCpus, threadCpusAllowed} from '../../src/host/cpus.js';
import {procStatFields} from '../../src/host/proc.js';
import {getThreadAffinity, getThreadNice, mapSharedFile, setThreadAffinity, setThreadLatency, setThreadNice, threadPolicy} from '../../src/host/libc.js';
import {PvrunError} from '../../src/util/errors.js';

// Above PID_MAX_LIMIT (2^22), so no thread can ever have this id.
const NO_SUCH_TID = 4_194_305;

// A `sleep 30` child (single-threaded, so its tid is its pid), killed when the test ends.
function sleeper(t: Pick<Test, 'teardown'>): number {
	const child = spawn('sleep', ['30'], {stdio: 'ignore'});
	t.teardown(() => {
		child.kill('SIGKILL');
	});
	if (child.pid === undefined) throw new Error('could not spawn sleep');
	return child.pid;
}

// The Cpus_allowed_list line of a process's /proc status, as the kernel writes it.
function statusCpus(pid: number): string {
	return /^Cpus_allowed_list:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
}

// A thread's nice value as the kernel reports it (field 19 of /proc/<pid>/stat).
function statNice(pid: number): number {
	return Number(procStatFields(pid)?.[19]);
}

t.test('pinning a real thread shows in /proc, and restoring undoes it', async (t) => {
	const pid = sleeper(t);
	const all = ownCpus();
	const last = all[all.length - 1] ?? 0;
	setThreadAffinity(pid, [last]);
	t.equal(statusCpus(pid), `${last}`);
	t.same(getThreadAffinity(pid), [last]);
	t.same(threadCpusAllowed(pid, pid), [last]);
	setThreadAffinity(pid, all);
	t.equal(statusCpus(pid), formatCpuList(all));
	t.same(getThreadAffinity(pid), all);
	t.same(getThreadAffinity(0), all, 'tid 0 is the calling thread');
});

t.test('a thread that does not exist is reported as ESRCH', async (t) => {
	const esrch = {name: 'PinError', message: /: ESRCH; the thread does not exist/, cause: {code: 'ESRCH', errno: 3}};
	t.throws(() => setThreadAffinity(NO_SUCH_TID, [0]), esrch);
	t.throws(() => getThreadAffinity(NO_SUCH_TID), esrch);
	t.throws(() => setThreadNice(NO_SUCH_TID, 1), esrch);
	t.throws(() => getThreadNice(NO_SUCH_TID), esrch);
	t.throws(() => threadCpusAllowed(NO_SUCH_TID, NO_SUCH_TID), PvrunError);
});

t.test('bad arguments are refused before any syscall', async (t) => {
	t.throws(() => setThreadAffinity(1, []), {name: 'PinError'});
	t.throws(() => setThreadAffinity(1, [1024]), {name: 'PinError'});
	t.throws(() => setThreadAffinity(1, [0.5]), {name: 'PinError'});
	t.throws(() => setThreadAffinity(-1, [0]), {name: 'PinError'});
	t.throws(() => setThreadNice(1, 20), {name: 'PinError'});
	t.throws(() => setThreadNice(1, -21), {name: 'PinError'});
	t.throws(() => getThreadNice(1.5), {name: 'PinError'});
});

t.test('nice values round-trip on a real thread, -1 included', async (t) => {
	const pid = sleeper(t);
	t.equal(getThreadNice(pid), statNice(pid));
	setThreadNice(pid, 7);
	t.equal(getThreadNice(pid), 7);
	t.equal(statNice(pid), 7);
	if (process.getuid?.() !== 0) {
		t.comment('not root: skipping negative nice values');
		return;
	}
	setThreadNice(pid, -1);
	t.equal(getThreadNice(pid), -1, 'getpriority returning -1 is not an error');
	t.equal(statNice(pid), -1);
});

t.test('setThreadLatency sets the nice value and the time slice', async (t) => {
	const pid = sleeper(t);
	setThreadLatency(pid, 5, 100_000);
	t.equal(statNice(pid), 5, 'nice applied');
	t.equal(threadPolicy(pid, pid), 0, 'still SCHED_OTHER');
	// sched_getattr (x86-64 syscall 315) reads the slice back: sched_runtime at offset 24.
	const probe = `import ctypes,struct;l=ctypes.CDLL(None);b=ctypes.create_string_buffer(56);print(l.syscall(315,${pid},b,56,0),struct.unpack_from('<Q',b.raw,24)[0])`;
	const r = await execa('python3', ['-c', probe], {reject: false});
	if (r.exitCode !== 0) {
		t.comment('python3 unavailable: slice not read back');
		return;
	}
	const [ret, slice] = r.stdout.trim().split(' ').map(Number);
	t.equal(ret, 0);
	// EEVDF custom slices came with Linux 6.12; older kernels keep none and read back 0.
	const [major = 0, minor = 0] = os.release().split('.').map(Number);
	t.equal(slice, major > 6 || (major === 6 && minor >= 12) ? 100_000 : 0, `slice read back: ${slice} ns on Linux ${os.release()}`);
	t.throws(() => setThreadLatency(pid, -21, 0), {message: /invalid nice value/});
	t.throws(() => setThreadLatency(NO_SUCH_TID, 0, 100_000), {message: /ESRCH/});
});

t.test('cost of setThreadAffinity', async (t) => {
	const pid = sleeper(t);
	const all = ownCpus();
	const calls = 10_000;
	setThreadAffinity(pid, all);
	const start = process.hrtime.bigint();
	for (let i = 0; i < calls; i++) setThreadAffinity(pid, all);
	const micros = Number(process.hrtime.bigint() - start) / 1000 / calls;
	t.comment(`setThreadAffinity: ${micros.toFixed(2)} µs per call (mean of ${calls})`);
	t.same(getThreadAffinity(pid), all, `after ${calls} calls the thread has the CPUs set`);
});

// A fresh 4096-byte file in /dev/shm, removed when the test ends, pass or fail.
function shmFile(t: Pick<Test, 'teardown'>): string {
	const file = `/dev/shm/pvrun-libc-test-${process.pid}-${crypto.randomUUID()}`;
	t.teardown(() => fs.rmSync(file, {force: true}));
	const fd = fs.openSync(file, 'wx+');
	try {
		fs.ftruncateSync(fd, 4096);
	} finally {
		fs.closeSync(fd);
	}
	return file;
}

t.test('a shared mapping sees file writes, and the file sees mapping writes', async (t) => {
	const file = shmFile(t);
	const mapping = mapSharedFile(file, 4096);
	t.teardown(() => mapping.unmap());
	t.equal(mapping.view.byteLength, 4096);
	const ints = new Int32Array(mapping.view);
	const fd = fs.openSync(file, 'r+');
	t.teardown(() => fs.closeSync(fd));

	const out = Buffer.alloc(4);
	out.writeInt32LE(0x1234_5678);
	fs.writeSync(fd, out, 0, 4, 64);
	t.equal(Atomics.load(ints, 16), 0x1234_5678, 'a write(2) to the file shows in the view');

	new DataView(mapping.view).setInt32(128, -42, true);
	Atomics.store(ints, 33, 99);
	const back = Buffer.alloc(8);
	fs.readSync(fd, back, 0, 8, 128);
	t.equal(back.readInt32LE(0), -42, 'a write to the view shows in read(2)');
	t.equal(back.readInt32LE(4), 99);

	mapping.unmap();
	mapping.unmap();
	t.equal(Atomics.load(ints, 16), 0, 'after unmap the view reads zeros instead of crashing');
	ints[16] = 5;
	fs.readSync(fd, back, 0, 4, 64);
	t.equal(back.readInt32LE(0), 0x1234_5678, 'after unmap, writes to the view do not reach the file');
});

t.test('mapping a missing or short file says what to fix', async (t) => {
	const file = shmFile(t);
	t.throws(() => mapSharedFile(file, 8192), /truncate it to at least 8192/);
	t.throws(() => mapSharedFile(`${file}.missing`, 4096), /ENOENT/);
	t.throws(() => mapSharedFile(file, 0), {name: 'ShmError'});
});
