import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, {type Test} from 'tap';
import {formatCpuList} from '../../src/host/cpus.js';
import {cpuPreference, memoryNode, readTopology, type CpuTopology} from '../../src/host/topology.js';
import {decideAffinity, floatingOnly, type Hint} from '../../src/hints/affinity/policy.js';

/** A host's sysfs in a folder: `cpus` CPUs, each CPU's SMT siblings, last-level cache and node. */
interface Shape {
	cpus: number;
	siblings: (cpu: number) => number[];
	llc: (cpu: number) => number[];
	node: (cpu: number) => number;
}

function fixture(t: Test, shape: Shape): string {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-topology-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	const write = (file: string, text: string) => {
		fs.mkdirSync(path.dirname(path.join(root, file)), {recursive: true});
		fs.writeFileSync(path.join(root, file), `${text}\n`);
	};
	const cpu = 'sys/devices/system/cpu';
	write(`${cpu}/online`, `0-${shape.cpus - 1}`);
	const nodes = new Map<number, number[]>();
	for (let c = 0; c < shape.cpus; c++) {
		write(`${cpu}/cpu${c}/topology/thread_siblings_list`, formatCpuList(shape.siblings(c)));
		write(`${cpu}/cpu${c}/cache/index0/level`, '1');
		write(`${cpu}/cpu${c}/cache/index0/type`, 'Data');
		write(`${cpu}/cpu${c}/cache/index0/shared_cpu_list`, formatCpuList(shape.siblings(c)));
		write(`${cpu}/cpu${c}/cache/index1/level`, '1');
		write(`${cpu}/cpu${c}/cache/index1/type`, 'Instruction');
		write(`${cpu}/cpu${c}/cache/index1/shared_cpu_list`, formatCpuList(shape.siblings(c)));
		write(`${cpu}/cpu${c}/cache/index3/level`, '3');
		write(`${cpu}/cpu${c}/cache/index3/type`, 'Unified');
		write(`${cpu}/cpu${c}/cache/index3/shared_cpu_list`, formatCpuList(shape.llc(c)));
		nodes.set(shape.node(c), [...(nodes.get(shape.node(c)) ?? []), c]);
	}
	for (const [n, list] of nodes) write(`sys/devices/system/node/node${n}/cpulist`, formatCpuList(list));
	return root;
}

const range = (from: number, to: number) => Array.from({length: to - from + 1}, (_, i) => from + i);

/** This machine's kind: one socket, 2 CPUs, no SMT, one cache. */
const small: Shape = {cpus: 2, siblings: (c) => [c], llc: () => [0, 1], node: () => 0};
/** 2 sockets x 8 cores x 2 threads, Intel's numbering: CPU c and c+16 share a core; a socket is one cache and one node. */
const twoSockets: Shape = {
	cpus: 32,
	siblings: (c) => [c % 16, (c % 16) + 16],
	llc: (c) => (c % 16 < 8 ? [...range(0, 7), ...range(16, 23)] : [...range(8, 15), ...range(24, 31)]),
	node: (c) => (c % 16 < 8 ? 0 : 1),
};
/** An AMD part: one socket, 16 cores x 2 threads, a last-level cache per 4 cores (CCX). */
const amd: Shape = {
	cpus: 32,
	siblings: (c) => [c % 16, (c % 16) + 16],
	llc: (c) => {
		const ccx = Math.floor((c % 16) / 4);
		return [...range(ccx * 4, ccx * 4 + 3), ...range(16 + ccx * 4, 16 + ccx * 4 + 3)];
	},
	node: () => 0,
};

const hint = (tid: number, vcpu: number): Hint => ({tid, tgid: tid, comm: 'w', vcpus: [vcpu], seq: tid});
/** The CPUs a VM of `n` vCPUs on `allowed` grants to its pinned vCPUs `asking`, in vCPU order. */
function grants(topo: CpuTopology, allowed: number[], asking: number[], others: {leased?: number[]; taken?: number[]} = {}, memNode?: number, n = 8): number[] {
	const prefer = cpuPreference(topo, {leased: new Set(others.leased ?? []), taken: new Set(others.taken ?? [])}, memNode);
	const placeable = allowed.filter((c) => !(others.leased ?? []).includes(c));
	const a = decideAffinity(
		asking.map((v, i) => hint(100 + i, v)),
		n,
		placeable,
		floatingOnly(placeable),
		new Set(),
		undefined,
		new Set(others.taken ?? []),
		prefer,
	);
	return asking.map((v) => a.exclusive.get(v)?.pcpu ?? -1);
}

t.test('readTopology: siblings, last-level cache (not an instruction cache) and node from sysfs', async (t) => {
	const topo = readTopology(fixture(t, twoSockets));
	t.same(topo.siblings.get(3), [19]);
	t.same(topo.siblings.get(19), [3]);
	t.equal(topo.llc.get(19), 0);
	t.equal(topo.llc.get(24), 8);
	t.equal(topo.node.get(9), 1);
	t.equal(topo.siblings.size, 32);
	const none = readTopology(path.join(os.tmpdir(), 'pvrun-no-such-root'));
	t.same([none.siblings.size, none.llc.size, none.node.size], [0, 0, 0], 'nothing to read: nothing known');
});

t.test('this machine’s kind (one socket, no SMT, one cache): the highest free CPU first, as without a topology', async (t) => {
	const topo = readTopology(fixture(t, small));
	t.same(topo.siblings.get(1), []);
	t.same(grants(topo, [0, 1], [0], {}, undefined, 2), [1]);
	t.same(readTopology().siblings.size > 0, true, 'and this host’s own sysfs reads');
});

t.test('2 sockets x 8 cores x 2 threads: off other VMs’ SMT siblings, near the VM’s memory, on one cache', async (t) => {
	const topo = readTopology(fixture(t, twoSockets));
	const all = range(0, 31);
	t.same(grants(topo, all, [0]), [31], 'nothing known: the highest CPU');
	t.same(grants(topo, all, [0], {leased: [31]}), [30], 'CPU 31 is another VM’s: not 15, its sibling');
	t.same(grants(topo, all, [0], {taken: [30, 31]}), [29], 'nor the siblings of CPUs a plain QEMU is pinned to (14, 15)');
	t.same(grants(topo, all, [0], {}, 0), [23], 'the VM’s memory on node 0: node 0’s highest CPU');
	t.same(grants(topo, all, [0, 1], {}, 0), [23, 22], 'its second grant on the same cache');
	t.same(grants(topo, all, [0, 1, 2], {leased: [22, 23]}, 0), [21, 20, 19], 'around another VM’s leases, still on node 0 and off their siblings 6, 7');
	t.same(
		grants(topo, range(0, 31), range(0, 9), {}, 0, 12),
		[23, 22, 21, 20, 19, 18, 17, 16, 7, 6],
		'ten grants: node 0’s cache first, even on SMT siblings of the VM’s own grants',
	);
});

t.test('an AMD part with a last-level cache per 4 cores: a VM’s grants stay on one cache while it has room', async (t) => {
	const topo = readTopology(fixture(t, amd));
	t.equal(new Set(topo.llc.values()).size, 4, 'four caches');
	const all = range(0, 31);
	t.same(grants(topo, all, [0, 1]), [31, 30], 'two grants, one cache (28-31, 12-15)');
	t.same(
		grants(topo, all, [0, 1], {leased: [31, 30, 29]}),
		[28, 12],
		'beside another VM’s 29-31: 28, then 12 on the same cache (its sibling is the VM’s own 28; 13-15 are the other VM’s siblings)',
	);
	t.same(grants(topo, range(0, 11), [0, 1], {}), [11, 10], 'on CPUs 0-11: cache 8-11');
	t.same(
		grants(topo, all, [0], {leased: [31, 30, 29, 28], taken: [27]}),
		[26],
		'off 11 (sibling of 27, pinned by a plain QEMU) and 12-15 (siblings of leased CPUs)',
	);
});

t.test('memoryNode: the node with the most pages in numa_maps; none with one node or nothing to read', async (t) => {
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-numa-'));
	t.teardown(() => fs.rmSync(root, {recursive: true, force: true}));
	fs.mkdirSync(path.join(root, 'proc/7'), {recursive: true});
	fs.writeFileSync(path.join(root, 'proc/7/numa_maps'), '7f00 default anon=10 N0=4 N1=6\n7f10 bind:1 anon=300 N1=300\n7f20 default N0=100\n');
	t.equal(memoryNode(7, root), 1);
	fs.writeFileSync(path.join(root, 'proc/7/numa_maps'), '7f00 default anon=10 N0=4\n');
	t.equal(memoryNode(7, root), undefined, 'one node');
	t.equal(memoryNode(8, root), undefined, 'no such process');
});
