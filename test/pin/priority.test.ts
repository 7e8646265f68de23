// Whether grants can be made by priority, asked of the kernel on real
// processes (`sleep` stands in for a vCPU thread): a thread in SCHED_OTHER is
// raised and lowered at once; one someone else put in another class, or one in
// a cgroup without real-time time, is a reason not to.
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t, {type Test} from 'tap';
import {threadPolicy} from '../../src/host/libc.js';
import {priorityUnavailable} from '../../src/pin/priority.js';

const isRoot = process.getuid?.() === 0;

async function sleeper(t: Test, ...prefix: string[]): Promise<number> {
	const [cmd = 'sleep', ...args] = [...prefix, 'sleep', '30'];
	const child = spawn(cmd, args, {stdio: 'ignore'});
	t.teardown(() => void child.kill('SIGKILL'));
	if (child.pid === undefined) throw new Error(`could not spawn ${cmd}`);
	await new Promise((r) => setTimeout(r, 100)); // the wrapper has exec'd `sleep`
	return child.pid;
}

t.test('what is not asked of the kernel', async (t) => {
	t.equal(priorityUnavailable('act', process.pid, process.pid), "--pv-cs act sets the vCPU threads' scheduling class");
	if (!isRoot) t.equal(priorityUnavailable('off', process.pid, process.pid), 'not root: SCHED_FIFO needs CAP_SYS_NICE');
	else t.equal(priorityUnavailable('off', process.pid, undefined), 'no vCPU thread');
});

t.test('a thread in SCHED_OTHER: usable, and left in SCHED_OTHER', {skip: !isRoot && 'needs root'}, async (t) => {
	const pid = await sleeper(t);
	t.equal(priorityUnavailable('observe', pid, pid), undefined);
	t.equal(threadPolicy(pid, pid), 0, 'lowered again at once');
});

t.test('a thread someone else put in another class is theirs', {skip: !isRoot && 'needs root'}, async (t) => {
	const pid = await sleeper(t, 'chrt', '--batch', '0');
	t.equal(threadPolicy(pid, pid), 3, 'SCHED_BATCH');
	t.match(priorityUnavailable('off', pid, pid), /^vCPU thread \d+ is in scheduling policy 3, not SCHED_OTHER: someone else sets the classes$/);
	t.equal(threadPolicy(pid, pid), 3, 'and left so');
});

// cgroup v1's cpu controller with real-time group scheduling: a new group has no real-time time.
const cpuRoot = '/sys/fs/cgroup/cpu';
const rtGroups = fs.existsSync(path.join(cpuRoot, 'cpu.rt_runtime_us'));
t.test(
	'a thread in a cgroup without real-time time: the kernel refuses, and says so',
	{skip: (!isRoot && 'needs root') || (!rtGroups && 'no cgroup v1 cpu controller with real-time group scheduling')},
	async (t) => {
		const dir = path.join(cpuRoot, `pvrun-test.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
		fs.mkdirSync(dir);
		const pid = await sleeper(t);
		t.teardown(async () => {
			try {
				fs.writeFileSync(path.join(cpuRoot, 'tasks'), String(pid));
			} catch {
				// exited already
			}
			// A process that is exiting still holds the group for a moment.
			for (let i = 0; i < 50 && fs.existsSync(dir); i++)
				try {
					fs.rmdirSync(dir);
				} catch {
					await new Promise((r) => setTimeout(r, 20));
				}
		});
		t.equal(fs.readFileSync(path.join(dir, 'cpu.rt_runtime_us'), 'utf8').trim(), '0');
		fs.writeFileSync(path.join(dir, 'tasks'), String(pid));
		t.match(priorityUnavailable('off', pid, pid), new RegExp(`^the kernel refuses SCHED_FIFO for vCPU thread ${pid}: .*(EPERM|not permitted)`));
		t.equal(threadPolicy(pid, pid), 0);
	},
);
