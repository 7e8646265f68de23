import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {LeaseTable, leaseDir, lockedInodes, mayTake, parseLease, parseOwner, readLeases, strands, type LeaseOwner} from '../../src/host/leases.js';
import {packageRoot} from '../../src/util/paths.js';

const tmpDir = (t: Test): string => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-leases-'));
	t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));
	return path.join(dir, 'leases');
};

// Two pvruns in one process: flock locks belong to open files, so two tables conflict as two processes would.
const owner = (pid: number, cpus = [0, 1]) => ({pid, qemuPid: pid + 1, name: `vm${pid}`, share: 1, cpus});

t.test('leaseDir: PVRUN_LEASE_DIR, else leases in the runtime root', async (t) => {
	t.equal(leaseDir('/run/pvrun', {}), '/run/pvrun/leases');
	t.equal(leaseDir('/run/pvrun', {PVRUN_LEASE_DIR: '/tmp/x/'}), '/tmp/x');
	t.throws(() => leaseDir('/run/pvrun', {PVRUN_LEASE_DIR: 'rel'}), /PVRUN_LEASE_DIR must be an absolute path/);
});

t.test('two tables on one directory: a lease is one holder’s; given back, the other takes it', async (t) => {
	const dir = tmpDir(t);
	const a = LeaseTable.open(dir, owner(1001));
	const b = LeaseTable.open(dir, owner(1002));
	t.teardown(() => (a.close(), b.close()));
	t.equal(
		a.transaction((tx) => tx.take(1, 0, false)),
		true,
		'A takes CPU 1',
	);
	t.same(a.held(), [1]);
	const seen = b.transaction((tx) => ({others: [...tx.othersLeased], owners: tx.others.map((o) => [o.pid, o.held]), took: tx.take(1, 3, false)}));
	t.same(seen, {others: [1], owners: [[1001, [1]]], took: false}, 'B sees A’s lease and its owner file, and cannot take CPU 1');
	const lease = parseLease(fs.readFileSync(path.join(dir, 'cpu1'), 'utf8'));
	t.match(lease, {cpu: 1, pid: 1001, qemuPid: 1002, name: 'vm1001', vcpu: 0}, 'the lease file says who holds it');
	const view = readLeases(dir);
	t.same(
		view.leases.map((l) => [l.cpu, l.pid]),
		[[1, 1001]],
		'a reader outside the lock sees the lease (/proc/locks)',
	);
	t.same(
		view.owners.map((o) => o.pid),
		[1001, 1002],
	);
	a.release(1);
	t.equal(fs.readFileSync(path.join(dir, 'cpu1'), 'utf8'), '', 'a lease given back is emptied');
	t.same(readLeases(dir).leases, [], 'and no longer shown');
	t.equal(
		b.transaction((tx) => tx.take(1, 3, false)),
		true,
		'B takes it now',
	);
	t.same(parseOwner(fs.readFileSync(path.join(dir, 'vm.1002'), 'utf8'))?.held, [1], 'B’s owner file lists it');
	b.close();
	t.notOk(fs.existsSync(path.join(dir, 'vm.1002')), 'closing removes the owner file');
	t.equal(
		a.transaction((tx) => tx.othersLeased.size),
		0,
		'and gives its leases back',
	);
});

t.test('the directory’s lock: a transaction waits a moment, then gives up', async (t) => {
	const dir = tmpDir(t);
	const a = LeaseTable.open(dir, owner(1101));
	const b = LeaseTable.open(dir, owner(1102));
	t.teardown(() => (a.close(), b.close()));
	const inner = a.transaction(() => {
		const started = performance.now();
		const result = b.transaction(() => 'ran');
		return {result, waitedMs: performance.now() - started};
	});
	t.equal(inner?.result, undefined, 'B does not run inside A’s transaction');
	t.ok((inner?.waitedMs ?? 0) >= 15 && (inner?.waitedMs ?? 0) < 1000, `B waited ~20 ms (${inner?.waitedMs.toFixed(1)} ms)`);
	t.equal(
		b.transaction(() => 'ran'),
		'ran',
		'after it, B runs',
	);
});

t.test('a holder killed with SIGKILL: its lease is free at once, its owner file removed by the next look', async (t) => {
	const dir = tmpDir(t);
	const script = `
		import {LeaseTable} from ${JSON.stringify(path.join(packageRoot, 'src/host/leases.ts'))};
		const table = LeaseTable.open(${JSON.stringify(dir)}, {pid: process.pid, qemuPid: 0, share: 1, cpus: [0, 1]});
		table.transaction((tx) => tx.take(1, 0, false));
		console.log('held');
		setInterval(() => {}, 1000);
	`;
	const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit']});
	t.teardown(() => child.kill('SIGKILL'));
	await new Promise<void>((resolve, reject) => {
		child.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
		child.on('exit', (code) => reject(new Error(`the holder exited (${code})`)));
	});
	const me = LeaseTable.open(dir, owner(1201));
	t.teardown(() => me.close());
	t.same(
		me.transaction((tx) => ({others: [...tx.othersLeased], owners: tx.others.map((o) => o.pid)})),
		{others: [1], owners: [child.pid]},
		'held by the child',
	);
	const exited = new Promise((resolve) => child.on('exit', resolve));
	child.kill('SIGKILL');
	await exited;
	const started = performance.now();
	const after = me.transaction((tx) => ({others: [...tx.othersLeased], owners: tx.others.map((o) => o.pid), took: tx.take(1, 0, false)}));
	t.same(after, {others: [], owners: [], took: true}, 'free at the first look after its death');
	t.ok(performance.now() - started < 1000);
	t.notOk(fs.existsSync(path.join(dir, `vm.${child.pid}`)), 'the dead one’s owner file is gone');
	t.same(
		readLeases(dir).leases.map((l) => l.pid),
		[1201],
	);
});

t.test('a directory others may write to, or a file in its place, is refused with one line', async (t) => {
	const dir = tmpDir(t);
	fs.mkdirSync(dir, {mode: 0o777});
	fs.chmodSync(dir, 0o777);
	t.throws(() => LeaseTable.open(dir, owner(1301)), /will not use the lease directory .*: anybody may write to it \(mode 777\)/);
	const file = `${dir}-file`;
	fs.writeFileSync(file, '');
	t.throws(() => LeaseTable.open(file, owner(1301)), /cannot create the lease directory|is not a directory/);
});

t.test('what the files say is validated: garbage, huge numbers, wrong types', async (t) => {
	t.equal(parseOwner('not json'), undefined);
	t.equal(parseOwner('[]'), undefined);
	t.equal(parseOwner(JSON.stringify({pid: 1, qemuPid: 2, share: 0, cpus: [0], held: []})), undefined, 'share 0');
	t.equal(parseOwner(JSON.stringify({pid: 1, qemuPid: 2, share: 1, cpus: [5000], held: []})), undefined, 'a CPU past 4095');
	t.equal(parseOwner(JSON.stringify({pid: 1, qemuPid: 2, share: 1, cpus: [0], held: [], name: 'x'.repeat(300)})), undefined, 'a long name');
	t.same(parseOwner(JSON.stringify({pid: 1, qemuPid: 2, share: 3, cpus: [0, 1], held: [1], waitingSince: 5, extra: true})), {
		pid: 1,
		qemuPid: 2,
		share: 3,
		cpus: [0, 1],
		held: [1],
		waitingSince: 5,
	});
	t.equal(parseLease(JSON.stringify({cpu: -1, pid: 1, qemuPid: 2, vcpu: 0, since: 1})), undefined);
	t.same(
		lockedInodes('1: FLOCK  ADVISORY  WRITE 4242 00:1a:777 0 EOF\n2: POSIX  ADVISORY  WRITE 1 00:1a:778 0 EOF\n3: FLOCK  ADVISORY  READ 5 fd:01:12 0 EOF\n'),
		new Set([777, 12]),
	);
});

const other = (pid: number, held: number[], waitingSince?: number, share = 1, cpus = [0, 1, 2, 3]): LeaseOwner => ({
	pid,
	qemuPid: 0,
	share,
	cpus,
	held,
	...(waitingSince !== undefined ? {waitingSince} : {}),
});

t.test('mayTake: a freed CPU goes to the waiting VM with the fewest CPUs per weight, then the first to wait', async (t) => {
	t.ok(mayTake(2, {held: 0, share: 1}, [other(1, [1])], 100), 'nobody waits');
	t.notOk(mayTake(2, {held: 0, share: 1}, [other(1, [], 50)], 100), 'one with as few that waits since earlier goes first');
	t.ok(mayTake(2, {held: 0, share: 1, waitingSince: 40}, [other(1, [], 50)], 100), 'unless this one waited longer');
	t.notOk(mayTake(2, {held: 0, share: 1}, [other(1, [], 100)], 100), 'a VM that asks now loses to one whose wait began in the same millisecond');
	t.ok(mayTake(2, {held: 0, share: 1, waitingSince: 100}, [other(1, [], 100)], 100), 'two that wait since the same millisecond: either may take it');
	t.ok(mayTake(2, {held: 0, share: 1}, [other(1, [1], 50)], 100), 'one that has a CPU already waits behind one that has none');
	t.notOk(mayTake(2, {held: 1, share: 1}, [other(1, [1], 50, 2)], 100), 'weight 2 with one CPU beats weight 1 with one');
	t.ok(mayTake(2, {held: 0, share: 1}, [other(1, [], 50, 1, [0, 1])], 100), 'a waiter that may not use the CPU does not count');
});

t.test('strands: no lease leaves another VM without an unleased CPU it may use', async (t) => {
	const b = other(2, [], undefined, 1, [0, 1]);
	t.notOk(strands(1, new Set(), [b]), 'CPU 0 stays for B');
	t.ok(strands(0, new Set([1]), [b]), 'with CPU 1 leased, CPU 0 is B’s last');
	t.notOk(strands(0, new Set([1]), [other(3, [], undefined, 1, [2, 3])]), 'a VM on other CPUs is not stranded');
});

t.test('a rewrite leaves a whole line first at every moment: readers take the first line', async (t) => {
	t.same(
		parseLease('{"cpu":1,"pid":2,"qemuPid":3,"vcpu":0,"since":4}\n"qemuPid":3,"vcpu":0,"since":4}\n')?.cpu,
		1,
		'the old line’s tail after the new line is ignored',
	);
	const dir = tmpDir(t);
	const a = LeaseTable.open(dir, owner(1401));
	t.teardown(() => a.close());
	a.setWaiting(true, 5);
	a.setAsking(3);
	a.setWaiting(false);
	const text = fs.readFileSync(path.join(dir, 'vm.1401'), 'utf8');
	t.equal(text.split('\n').length, 2, 'one line and its end, the longer old content cut off');
	t.match(parseOwner(text), {pid: 1401, asking: 3});
	t.equal(parseOwner(text)?.waitingSince, undefined);
});
