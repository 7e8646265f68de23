// The float group on the host's real cpuset hierarchy (cgroup v1, root), with
// sleeping processes standing in for vCPU threads: one write moves every
// floating thread, a grant leaves the group and a release joins it again, an
// operator's taskset survives the writes, and nothing is left behind; the
// Pinner with a group places threads as without one, in a constant number of
// writes; groups of crashed pvruns are removed; where there is no group, the
// reason is one line.
import fs from 'node:fs';
import path from 'node:path';
import t, {type Test} from 'tap';
import {ownCpus, parseCpuList, threadCpusAllowed} from '../../src/host/cpus.js';
import {setThreadAffinity} from '../../src/host/libc.js';
import {FloatGroup, cpusetMount, cpusetOf, removeStaleGroups, tasksOf} from '../../src/pin/cpuset.js';
import {Pinner} from '../../src/pin/pinner.js';
import {decideAffinity, floatingOnly} from '../../src/hints/affinity/policy.js';
import {sleeper, standIn} from '../helpers/fast.js';

const mount = cpusetMount();
const cpus = ownCpus().slice(0, 2);
const [c0 = 0, c1 = 1] = cpus;
const skip =
	process.getuid?.() !== 0
		? 'needs root'
		: !mount
			? 'needs a cgroup v1 cpuset hierarchy'
			: cpus.length < 2
				? 'needs two CPUs'
				: cpusetOf(process.pid) === undefined
					? 'no cpuset'
					: false;
const cpusOf = (tid: number) => threadCpusAllowed(tid, tid);

let serial = 0;
/** A group over `n` sleepers (the first stands in for QEMU's main thread), closed and removed with `t`. */
function groupFor(t: Test, n: number): {group: FloatGroup; qemu: number; vcpus: number[]} {
	const qemu = sleeper(t).pid ?? 0;
	const vcpus = Array.from({length: n}, () => sleeper(t).pid ?? 0);
	const group = FloatGroup.open(qemu, vcpus, cpus, {name: `pvrun-test.${process.pid}.${serial++}`});
	if (typeof group === 'string') throw new Error(group);
	t.teardown(() => void group.close());
	return {group, qemu, vcpus};
}

t.test('one write moves every floating thread; a grant leaves, a release joins; close removes all', {skip}, async (t) => {
	const {group, vcpus} = groupFor(t, 3);
	const [a = 0, b = 0, c = 0] = vcpus;
	t.equal(path.dirname(group.dir), path.resolve(mount ?? '', `.${cpusetOf(process.pid) ?? ''}`), "in QEMU's own cpuset");
	t.same(parseCpuList(fs.readFileSync(path.join(group.dir, 'cpuset.cpus'), 'utf8').trim()), cpus, "the VM's cpuset has the allowed CPUs");
	for (const tid of vcpus) group.join(tid);
	t.same(tasksOf(group.floatDir).sort(), [...vcpus].sort(), 'the threads are in the floating cpuset');
	t.ok(group.setFloating([c0]), 'one write');
	t.notOk(group.setFloating([c0]), 'none when the set is the same');
	t.same(
		vcpus.map(cpusOf),
		vcpus.map(() => [c0]),
		'every floating thread follows it',
	);
	group.leave(c);
	setThreadAffinity(c, [c1]);
	t.same(cpusOf(c), [c1], 'a granted thread outside it has its own CPU');
	t.same(tasksOf(group.dir), [c], "it is in the VM's cpuset");
	setThreadAffinity(b, [c0]); // an operator's taskset, inside the floating CPUs
	group.setFloating(cpus);
	t.same(cpusOf(a), cpus, 'widened again');
	t.same(cpusOf(b), [c0], "the operator's CPUs stay through the writes");
	t.same(cpusOf(c), [c1], "the granted thread is not touched by the floating set's writes");
	group.join(c);
	t.same(cpusOf(c), cpus, 'a released thread joins with the floating set');
	t.same(group.close(), [], 'closed without errors');
	t.notOk(fs.existsSync(group.dir), 'its cpusets removed');
	t.same(tasksOf(group.floatDir), [], 'the threads went back');
	t.equal(cpusetOf(a), cpusetOf(process.pid), "to QEMU's cpuset");
	t.same(cpusOf(a), cpus, 'on its CPUs');
});

t.test('the Pinner with a group: grants and releases placed as without one, one write for all floating threads', {skip}, async (t) => {
	const n = 16;
	const {group, qemu, vcpus} = groupFor(t, n);
	const pinner = new Pinner(new Map(vcpus.map((tid, v) => [v, tid])), qemu, false, standIn);
	pinner.useGroup(group);
	let a = floatingOnly(cpus);
	t.same(pinner.apply(a).errors, []);
	t.same(tasksOf(group.floatDir).length, n, 'every vCPU thread joined the floating set');
	const writes = countWrites(t, group);
	const hint = {tid: 100, tgid: 100, comm: 'x', vcpus: [3], seq: 1};
	a = decideAffinity([hint], n, cpus, a);
	const pcpu = a.exclusive.get(3)?.pcpu ?? -1;
	const granted = vcpus[3] ?? 0;
	const r = pinner.apply(a);
	t.same(r.errors, []);
	t.equal(r.changed.size, n, 'every vCPU changed');
	t.same(cpusOf(granted), [pcpu], 'vCPU 3 has its CPU');
	t.same(tasksOf(group.dir), [granted], 'outside the floating set');
	t.ok(
		vcpus.filter((tid) => tid !== granted).every((tid) => cpusOf(tid).join(',') === a.floating.join(',')),
		'the others float off it',
	);
	t.same(writes(), {floating: 1, moves: 1}, 'one write of the floating set, one move');
	a = decideAffinity([], n, cpus, a);
	t.same(pinner.apply(a).errors, []);
	t.same(cpusOf(granted), cpus, 'released: it floats again');
	t.same(tasksOf(group.dir), [], 'inside the floating set');
	t.same(writes(), {floating: 2, moves: 2});

	// The same through plan and adopt (the fast path's way), and an op list that does not grow with the vCPU count.
	const next = decideAffinity([hint], n, cpus, a);
	const ops = pinner.plan(next);
	t.same(
		ops.map((op) => op.group),
		['leave', 'float'],
		'a grant: its thread leaves, the floating set is written',
	);
	const back = pinner.plan(a, ops);
	t.same(
		back.map((op) => op.group),
		['float', 'join'],
		'and back: the floating set widens, its thread joins',
	);
});

t.test(
	"the Pinner with a group: a vCPU held for an operator leaves the floating set with the operator's CPUs, and joins it again when handed back",
	{skip},
	async (t) => {
		const {group, qemu, vcpus} = groupFor(t, 3);
		const [, b = 0] = vcpus;
		const pinner = new Pinner(new Map(vcpus.map((tid, v) => [v, tid])), qemu, false, standIn);
		pinner.useGroup(group);
		const a = floatingOnly(cpus);
		t.same(pinner.apply(a).errors, []);
		setThreadAffinity(b, [c0]); // the operator's taskset
		t.same(pinner.hold(1), []);
		t.same(tasksOf(group.dir), [b], "out of the floating set, in the VM's cpuset");
		t.same(cpusOf(b), [c0], "with the operator's CPUs");
		t.equal(
			pinner.apply(decideAffinity([{tid: 100, tgid: 100, comm: 'x', vcpus: [0], seq: 1}], 3, cpus, a, new Set(), {vcpus: new Set([1]), cpus: new Set([c0])}))
				.errors.length,
			0,
		);
		t.same(cpusOf(b), [c0], 'the floating set narrowed: the held thread is not touched');
		setThreadAffinity(b, cpus); // handed back
		pinner.release(1);
		t.same(pinner.apply(a).errors, []);
		t.ok(tasksOf(group.floatDir).includes(b), 'in the floating set again');
		t.same(cpusOf(b), cpus);
	},
);

t.test("no group in a libvirt machine's cpuset", {skip}, async (t) => {
	const qemu = sleeper(t).pid ?? 0;
	const root = mount ?? '';
	const slice = path.join(root, 'machine.slice');
	const made = !fs.existsSync(slice);
	const dir = path.join(slice, `pvrun-test.${process.pid}`);
	const mems = fs.readFileSync(path.join(root, 'cpuset.effective_mems'), 'utf8').trim();
	for (const d of made ? [slice, dir] : [dir]) {
		fs.mkdirSync(d);
		fs.writeFileSync(path.join(d, 'cpuset.cpus'), fs.readFileSync(path.join(root, 'cpuset.effective_cpus'), 'utf8').trim());
		fs.writeFileSync(path.join(d, 'cpuset.mems'), mems);
	}
	t.teardown(() => {
		for (const tid of tasksOf(dir)) fs.writeFileSync(path.join(root, 'tasks'), `${tid}\n`);
		for (const d of made ? [dir, slice] : [dir]) fs.rmdirSync(d);
	});
	fs.writeFileSync(path.join(dir, 'tasks'), `${qemu}\n`);
	t.match(FloatGroup.open(qemu, [], cpus), /^QEMU is in \/machine\.slice\/pvrun-test\.\d+, a libvirt machine's cpuset: the operator's$/);
	t.same(
		fs.readdirSync(dir).filter((n) => n.startsWith('pvrun.')),
		[],
		'nothing made',
	);
});

/** Counts of the group's writes from now on: the floating set, and thread moves. */
function countWrites(t: Test, group: FloatGroup): () => {floating: number; moves: number} {
	const counts = {floating: 0, moves: 0};
	const set = group.setFloating.bind(group);
	const leave = group.leave.bind(group);
	const join = group.join.bind(group);
	group.setFloating = (c) => {
		const wrote = set(c);
		if (wrote) counts.floating++;
		return wrote;
	};
	group.leave = (tid) => {
		counts.moves++;
		leave(tid);
	};
	group.join = (tid) => {
		counts.moves++;
		join(tid);
	};
	t.teardown(() => Object.assign(group, {setFloating: set, leave, join}));
	return () => ({...counts});
}

t.test("a crashed pvrun's group is removed, a live QEMU's is not", {skip}, async (t) => {
	const parent = path.join(mount ?? '', cpusetOf(process.pid) ?? '');
	const dead = path.join(parent, 'pvrun.999999999');
	const live = path.join(parent, `pvrun.${process.pid}`);
	for (const d of [dead, path.join(dead, 'float'), live]) fs.mkdirSync(d);
	t.teardown(() => {
		for (const d of [path.join(dead, 'float'), dead, live]) fs.rmSync(d, {recursive: false, force: true});
	});
	const removed = removeStaleGroups(parent, (pid) => pid !== 999999999);
	t.same(removed, [dead]);
	t.notOk(fs.existsSync(dead));
	t.ok(fs.existsSync(live), "a live QEMU's group stays");
	fs.rmdirSync(live);
});

t.test('no group where it must not be: one line each', {skip}, async (t) => {
	const qemu = sleeper(t).pid ?? 0;
	const other = sleeper(t).pid ?? 0;
	const parent = path.join(mount ?? '', cpusetOf(process.pid) ?? '');
	const elsewhere = path.join(parent, `pvrun-test-elsewhere.${process.pid}`);
	fs.mkdirSync(elsewhere);
	fs.writeFileSync(path.join(elsewhere, 'cpuset.cpus'), String(c0));
	fs.writeFileSync(path.join(elsewhere, 'cpuset.mems'), fs.readFileSync(path.join(parent, 'cpuset.effective_mems'), 'utf8').trim());
	t.teardown(() => {
		for (const tid of tasksOf(elsewhere)) fs.writeFileSync(path.join(parent, 'tasks'), `${tid}\n`);
		fs.rmdirSync(elsewhere);
	});
	fs.writeFileSync(path.join(elsewhere, 'tasks'), `${other}\n`);
	t.match(FloatGroup.open(qemu, [other], cpus), /^vCPU thread \d+ is in another cpuset than QEMU's: someone else's layout$/, 'a layout of somebody else');
	fs.writeFileSync(path.join(elsewhere, 'tasks'), `${qemu}\n`);
	t.match(FloatGroup.open(qemu, [], cpus), /^CPUs .* are outside QEMU's cpuset/, 'CPUs QEMU may not use');
	t.match(FloatGroup.open(qemu, [], cpus, {mount: '/nonexistent'}), /QEMU's cpuset is unknown|cannot make a cpuset/, 'a hierarchy that is not there');
	t.notOk(fs.existsSync(path.join(elsewhere, `pvrun.${qemu}`)), 'nothing made');
});
