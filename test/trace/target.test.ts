// Which VM pvrun trace traces: --vm as pvrun top takes it (id, name, QEMU or pvrun pid), the
// only running VM without it, one clear error with none or several; a plain QEMU by pid when
// its vCPU threads carry their names.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {chooseVm, plainQemu, threadNames, traceTarget} from '../../src/trace/target.js';
import {PvrunError, UsageError} from '../../src/util/errors.js';
import type {VmStatus} from '../../src/vm/state.js';
import {deadPid, fakeRoot, runDir, validState, writeJson} from '../helpers/run-dirs.js';

const vm = (id: string, pvrunPid: number, qemuPid: number, extra: Partial<VmStatus> = {}): VmStatus => ({
	...validState(id, pvrunPid, {qemuPid}),
	runDir: `/run/pvrun/${id}`,
	uid: 0,
	qemuRunning: true,
	state: 'running',
	uptimeSeconds: 1,
	...extra,
});
const web = vm('pvrun-10-aa', 10, 11, {name: 'web'});
const db = vm('pvrun-20-bb', 20, 21, {name: 'db'});
const gone = vm('pvrun-30-cc', 30, 31, {name: 'gone', qemuRunning: false, state: 'exited'});
const roots = ['/run/pvrun'];

t.test('--vm: by id, name, QEMU pid or pvrun pid, among the running VMs', async (t) => {
	const expected = {qemuPid: 21, pvrunPid: 20, label: 'pvrun-20-bb "db" (QEMU 21)'};
	for (const wanted of ['pvrun-20-bb', 'db', '21', '20']) t.same(chooseVm([web, db], wanted, roots), expected, wanted);
	t.equal(chooseVm([web, db, gone], 'gone', roots), undefined, 'a VM whose QEMU has ended is not traced');
	t.equal(chooseVm([web], 'nosuch', roots), undefined, 'names none');
	t.throws(() => chooseVm([web, vm('pvrun-40-dd', 40, 41, {name: 'web'})], 'web', roots), UsageError, 'two VMs of the same name: say which');
});

t.test('without --vm: the only VM running; with none or several, one line that says so', async (t) => {
	t.same(chooseVm([web, gone], undefined, roots), {qemuPid: 11, pvrunPid: 10, label: 'pvrun-10-aa "web" (QEMU 11)'});
	t.throws(() => chooseVm([gone], undefined, roots), new PvrunError('no pvrun VM is running (looked in /run/pvrun); --vm PID traces a plain QEMU'));
	const several = (() => {
		try {
			chooseVm([web, db], undefined, roots);
		} catch (error) {
			return error;
		}
		return undefined;
	})();
	t.type(several, UsageError, 'several: a usage error (exit 2)');
	t.equal((several as Error).message, '2 pvrun VMs are running: say which with --vm (web, db)');
});

/** A fake /proc with process 500's threads named as given. */
function fakeProc(t: Parameters<typeof fakeRoot>[0], threads: Record<number, string>): string {
	const proc = fakeRoot(t);
	for (const [tid, comm] of Object.entries(threads)) {
		fs.mkdirSync(path.join(proc, '500', 'task', tid), {recursive: true});
		fs.writeFileSync(path.join(proc, '500', 'task', tid, 'comm'), `${comm}\n`);
	}
	return proc;
}

t.test('a plain QEMU by pid: its vCPU threads must carry their names', async (t) => {
	const named = fakeProc(t, {500: 'qemu-system-x86', 501: 'CPU 0/TCG', 502: 'CPU 1/KVM'});
	t.same(
		[...threadNames(500, named)],
		[
			[500, 'qemu-system-x86'],
			[501, 'CPU 0/TCG'],
			[502, 'CPU 1/KVM'],
		],
	);
	t.same(plainQemu(500, named), {qemuPid: 500, label: "QEMU 500 (not pvrun's)"});
	const unnamed = fakeProc(t, {500: 'qemu-system-x86', 501: 'qemu-system-x86'});
	t.throws(() => plainQemu(500, unnamed), /has no thread named "CPU N\/TCG" or "CPU N\/KVM" \(a QEMU needs -name NAME,debug-threads=on\)/);
	t.throws(() => plainQemu(600, unnamed), new PvrunError('no pvrun VM is 600, and no process 600 is running'));
});

t.test("traceTarget: the caller's runtime root, then a pid as a plain QEMU", async (t) => {
	const root = fakeRoot(t);
	const saved = process.env['PVRUN_RUNTIME_DIR'];
	process.env['PVRUN_RUNTIME_DIR'] = root;
	t.teardown(() => {
		if (saved === undefined) delete process.env['PVRUN_RUNTIME_DIR'];
		else process.env['PVRUN_RUNTIME_DIR'] = saved;
	});
	t.throws(() => traceTarget({all: false}), /^no pvrun VM is running \(looked in /, 'none yet');
	// This test's own process stands for a running pvrun and its QEMU.
	const {id, runDir: dir} = runDir(root, process.pid, 'abc');
	writeJson(dir, validState(id, process.pid, {name: 'mine'}));
	t.same(traceTarget({all: false}), {qemuPid: process.pid, pvrunPid: process.pid, label: `${id} "mine" (QEMU ${process.pid})`}, 'the only one');
	t.equal(traceTarget({vm: 'mine', all: false}).qemuPid, process.pid, 'by name');
	t.throws(() => traceTarget({vm: 'other', all: false}), new PvrunError(`no pvrun VM is "other" (looked in ${root}; --all looks in every user's)`));
	const proc = fakeProc(t, {500: 'qemu-system-x86', 501: 'CPU 0/TCG'});
	t.same(traceTarget({vm: '500', all: false}, proc), {qemuPid: 500, label: "QEMU 500 (not pvrun's)"}, 'a pid no pvrun VM has: a plain QEMU');
	t.throws(() => traceTarget({vm: String(deadPid), all: false}, proc), /no process \d+ is running/);
});
