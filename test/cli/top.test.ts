// `pvrun top`: the frame from state files and /proc samples (a terminal's width and height
// kept to), its options, and the built CLI's piped frames over fake run directories. The live
// view in a real terminal, with a VM running: test/e2e/top.test.ts.
import path from 'node:path';
import {execa} from 'execa';
import t from 'tap';
import {formatDecision, topFrame, topOptions, type FrameInput, type Sample} from '../../src/cli/top.js';
import {pvrunCommand} from '../../src/guest/boot.js';
import type {VmStatus} from '../../src/vm/state.js';
import {updatePlacement, writeVmState} from '../../src/vm/state.js';
import {fakeRoot, runDir, validState} from '../helpers/run-dirs.js';

const [node = 'node', ...cli] = pvrunCommand();
const at = new Date('2026-12-06T10:00:00').getTime();

const vm: VmStatus = {
	...validState('pvrun-10-ab', 10, {
		qemuPid: 11,
		name: 'web',
		hints: {state: 'active', types: ['affinity']},
		placement: [
			{vcpu: 1, cpus: [1], exclusive: true, tid: 21},
			{vcpu: 0, cpus: [0], exclusive: false, tid: 20},
		],
		activity: {
			records: 7,
			pins: 1,
			floats: 1,
			denies: 0,
			recent: [
				{at: at - 5000, kind: 'pin', vcpus: [1], cpus: [1], tid: 512, comm: 'stress', shared: false},
				{at: at - 2000, kind: 'float', vcpus: [1], cpus: [0, 1], tid: 512, comm: 'stress'},
			],
		},
	}),
	runDir: '/run/pvrun/pvrun-10-ab',
	uid: 0,
	qemuRunning: false, // not to be read from /proc here
	state: 'running',
	uptimeSeconds: 725,
	kernelCpus: {'0': [0], '1': [1]},
};

const sample = (atMs: number, t20: [number, number], t21: [number, number], machine: [number, number]): Sample => ({
	at: atMs,
	machine: {total: machine[0], idle: machine[1]},
	threads: new Map([
		['11/20', {runNs: t20[0], waitNs: t20[1], lastCpu: 0}],
		['11/21', {runNs: t21[0], waitNs: t21[1], lastCpu: 1}],
	]),
});

const frame = (changes: Partial<FrameInput> = {}): string[] =>
	topFrame({
		vms: [vm],
		// One second apart: vCPU 0 ran 250 ms and waited 500 ms, vCPU 1 ran 990 ms; the machine was 3/4 busy.
		before: sample(1000, [0, 0], [0, 0], [0, 0]),
		after: sample(2000, [250e6, 500e6], [990e6, 1e6], [200, 50]),
		columns: 120,
		rows: 40,
		roots: ['/run/pvrun'],
		skipped: 0,
		now: at,
		live: true,
		...changes,
	});

t.test('a frame: the host, each VM, its vCPUs with their use and wait, its hints and newest decisions', async (t) => {
	t.same(frame(), [
		'pvrun top  10:00:00  host, 75% busy  1 VM  q: quit',
		'',
		'pvrun-10-ab "web"  running 12m05s  hints active (affinity)  QEMU 11  pvrun 10',
		'  vCPU  THREAD  MAY RUN ON  PLACED    LAST CPU  CPU%  WAIT%',
		'     0      20  0           floating         0  25.0   50.0',
		'     1      21  1           excl             1  99.0    0.1',
		'  hints read 7: 1 pin, 1 release, 0 denied',
		'  09:59:58  float  vCPU 1 → CPUs 0-1, its thread let go (guest thread 512 stress)',
		'  09:59:55  pin    vCPU 1 → CPU 1 exclusive (guest thread 512 stress)',
	]);
	t.same(
		frame({before: undefined}).slice(3, 6),
		[
			'  vCPU  THREAD  MAY RUN ON  PLACED    LAST CPU  CPU%  WAIT%',
			'     0      20  0           floating         0     -      -',
			'     1      21  1           excl             1     -      -',
		],
		'the first frame has nothing to measure use against yet',
	);
	t.equal(frame({live: false})[0], 'pvrun top  10:00:00  host, 75% busy  1 VM', 'piped: no word about q');
	const shared = {
		...vm,
		placement: [
			{vcpu: 1, cpus: [1], exclusive: true, tid: 21},
			{vcpu: 0, cpus: [0, 1], exclusive: false, tid: 20},
		],
		kernelCpus: {},
	};
	t.match(frame({vms: [shared]})[5], /^ {5}1 +21 +1 +shared /, 'a granted CPU the floating vCPUs may use too: shared');
	t.same(
		frame({vms: [{...vm, leases: [{cpu: 1, vcpu: 1, since: 1}]}]}).slice(6, 8),
		['  leases: 1 (vCPU 1)', '  hints read 7: 1 pin, 1 release, 0 denied'],
		'the CPUs it leases host-wide (docs/leases.md)',
	);
	t.equal(frame({vms: [{...vm, leaseWaitingSince: 5}]})[6], '  leases: waiting', 'or that it waits for one');
	const held = {...vm, placement: [{vcpu: 0, cpus: [0], exclusive: false, tid: 20, operator: true}]};
	t.match(frame({vms: [held]})[4], /^ {5}0 +20 +0 +operator /, 'pinned by an operator');
});

t.test('a frame fits the terminal: lines cut to its width, and at most its height of them', async (t) => {
	const small = frame({columns: 40, rows: 6});
	t.equal(small.length, 6, 'six rows');
	t.ok(
		small.every((l) => l.length <= 40),
		`each at most 40 columns: ${JSON.stringify(small)}`,
	);
	t.match(small[5], /^… 4 more lines/, 'the last says what did not fit');
	t.match(small[2], /^pvrun-10-ab "web" {2}running 12m05s {2}hint…$/, 'a cut line ends in …');
	t.same(frame({columns: 10, rows: 1}), ['… 9 more l'], 'one row: only what did not fit');
	t.same(frame({rows: 0}), [], 'no rows: nothing');
});

t.test('no VM: where it looked; a VM asked for and not found: which', async (t) => {
	t.same(frame({vms: [], live: false}), ['pvrun top  10:00:00  host, 75% busy  0 VMs', 'no pvrun VMs running (looked in /run/pvrun)']);
	t.same(frame({vms: [], vm: 'db', skipped: 2, live: false}), [
		'pvrun top  10:00:00  host, 75% busy  0 VMs, 2 skipped (pvrun status)',
		'no pvrun VM is "db" (looked in /run/pvrun)',
	]);
});

t.test('formatDecision: pins, releases and denials', async (t) => {
	t.equal(
		formatDecision({at, kind: 'pin', vcpus: [2], cpus: [3], tid: 7, comm: 'db', shared: true}),
		'10:00:00  pin    vCPU 2 → CPU 3 shared (guest thread 7 db)',
	);
	t.equal(formatDecision({at, kind: 'float', vcpus: [2], cpus: [0, 1, 2, 3], tid: 0}), '10:00:00  float  vCPU 2 → CPUs 0-3');
	t.equal(formatDecision({at, kind: 'deny', vcpus: [2, 3], cpus: [0, 1]}), '10:00:00  deny   vCPUs 2,3: no free CPU among 0-1');
});

t.test('topOptions: a delay from 0.1 to 3600 s, a whole number of frames', async (t) => {
	t.same(topOptions({all: false, delay: 1}), {all: false, delayS: 1});
	t.same(topOptions({vm: 'web', all: true, delay: 0.5, iterations: 3}), {vm: 'web', all: true, delayS: 0.5, iterations: 3});
	for (const delay of [0, 0.05, -1, NaN, 3601])
		t.throws(() => topOptions({all: false, delay}), {exitCode: 2, message: /^--delay takes seconds from 0.1 to 3600, not /});
	for (const iterations of [0, 1.5, -2, NaN])
		t.throws(() => topOptions({all: false, delay: 1, iterations}), {exitCode: 2, message: /^--iterations takes a whole number of frames, at least 1, not /});
});

t.test('pvrun top, piped: frames over the state files (built CLI, PVRUN_RUNTIME_DIR as the root)', async (t) => {
	const root = fakeRoot(t);
	const live = runDir(root, process.pid, 'feed05');
	writeVmState({...live, qmpSocket: path.join(live.runDir, 'qmp.sock'), args: ['-name', 'top-vm']}, {}, {qemuPid: process.pid});
	updatePlacement(live.runDir, [{vcpu: 0, cpus: [0], exclusive: true, tid: process.pid}], {
		records: 3,
		pins: 1,
		floats: 0,
		denies: 0,
		recent: [{at: Date.now(), kind: 'pin', vcpus: [0], cpus: [0], tid: 99, comm: 'worker', shared: false}],
	});
	const env = {...process.env, PVRUN_RUNTIME_DIR: root};
	const one = await execa(node, [...cli, 'top', '-d', '0.2'], {reject: false, env});
	t.equal(one.exitCode, 0, one.stderr);
	const lines = one.stdout.split('\n');
	t.match(lines[0], /^pvrun top {2}\d\d:\d\d:\d\d {2}host, \d+% busy {2}1 VM$/, 'one frame, no word about q');
	t.match(lines[2], new RegExp(`^${live.id} "top-vm"  starting \\d+s  hints -  QEMU ${process.pid}  pvrun ${process.pid}$`));
	t.match(lines[4], new RegExp(`^ +0 +${process.pid} +\\S+ +excl +\\d+ +[\\d.]+ +[\\d.]+$`), "vCPU 0's thread (this process): its use measured");
	t.match(lines[6], /^ {2}\d\d:\d\d:\d\d {2}pin {4}vCPU 0 → CPU 0 exclusive \(guest thread 99 worker\)$/);
	const two = await execa(node, [...cli, 'top', live.id, '-n', '2', '-d', '0.2'], {reject: false, env});
	t.equal(two.exitCode, 0, two.stderr);
	t.equal(two.stdout.split('\n').filter((l) => l.startsWith('pvrun top ')).length, 2, '-n 2: two frames');
	const missing = await execa(node, [...cli, 'top', 'nosuch', '-d', '0.2'], {reject: false, env});
	t.same([missing.exitCode, missing.stdout.split('\n')[1]], [1, `no pvrun VM is "nosuch" (looked in ${root})`], 'a VM that is not there: exit 1, saying so');
	const bad = await execa(node, [...cli, 'top', '-d', '0'], {reject: false, env});
	t.same([bad.exitCode, bad.stderr], [2, 'pvrun: --delay takes seconds from 0.1 to 3600, not 0'], 'a bad delay: one line, exit 2');
});
