// End to end, the agent channel against a real guest: an area in the old
// layout (v1) told apart and left alone, then hello, load, list, live (the
// guest is ready only then), stats, ping,
// a load the verifier/libbpf rejects (the error carries the log), unload — and
// the agent surviving the host side going away and coming back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {AgentClient, AgentReplyError} from '../../src/agent/client.js';
import {bootGuest, readyLine} from '../../src/guest/boot.js';
import {ensureImage} from '../../src/image/build.js';
import {createShmArea} from '../../src/shm/area.js';
import {Header, RecordType, shmSize} from '../../src/shm/layout.js';
import {packageRoot} from '../../src/util/paths.js';
import {planVm} from '../../src/vm/plan.js';
import {probeHost} from '../../src/vm/probe.js';
import {vmConfig} from '../helpers/vm-config.js';

t.test('the agent serves the protocol and survives the host reconnecting', async (t) => {
	const image = await ensureImage();
	// pvrun's channel arguments, with the accelerator left to bootGuest.
	const config = vmConfig();
	const plan = planVm(['-accel', 'tcg,thread=multi'], config, probeHost(config), os.tmpdir(), {pid: process.pid, cwd: process.cwd()});
	fs.mkdirSync(plan.runDir, {mode: 0o700});
	const area = createShmArea(plan.shmPath, 2);
	// First as a pvrun of layout v1 left it: version 1, none of v2's cell fields.
	area.view.setUint16(Header.version, 1, true);
	for (const f of [Header.cellsOffset, Header.cells, Header.cellSize]) area.view.setUint32(f, 0, true);
	const v1 = Buffer.from(area.view.buffer, area.view.byteOffset, shmSize).toString('base64');
	// The guest re-pins its shell every 0.2 s, so a loaded affinity program produces records.
	const guest = bootGuest({
		kernel: image.kernel,
		initrd: image.initrd,
		cpus: 2,
		run: 'while,true;do,taskset,-p,0x1,$$>/dev/null;sleep,0.2;done',
		qemuArgs: plan.args.slice(2),
	});
	const clients: AgentClient[] = [];
	t.teardown(async () => {
		for (const c of clients) c.close();
		await guest.stop();
		area.remove();
		fs.rmSync(plan.runDir, {recursive: true, force: true});
	});
	// The guest is ready only once its host says the hints are live (LIVE, below): this test is that host.
	await guest.waitFor('is layout v1', 60_000);

	const first = await AgentClient.connect(plan.agentSocket, 10_000);
	clients.push(first);
	const old = await first.hello(shmSize, 10_000);
	t.notOk(old.shmOk, 'a v1 area: the v2 agent does not map it');
	t.equal(old.shmVersion, 2, 'and says which layout it speaks');
	t.match(
		guest.lines.filter((l) => l.includes('layout v1')),
		[/^pvagent: pvrun's shared memory \(.+\) is layout v1, this agent speaks v2: use the agent of the host's pvrun/],
		'one clear line on the guest console for each look at it',
	);
	t.equal(Buffer.from(area.view.buffer, area.view.byteOffset, shmSize).toString('base64'), v1, 'nothing in the v1 area was read as v2 and written to');
	// The host of this layout takes the area over (pvrun rewrites its header): the next hello maps it.
	area.restoreHeader();
	const hello = await first.hello(shmSize, 10_000);
	t.equal(hello.version, 1, 'protocol version 1');
	t.ok(hello.shmOk, 'the agent mapped and validated the shared memory');
	t.equal(hello.nrCpus, 2);
	t.equal(hello.programs, 0);
	t.match(hello.kernelRelease, /cloud-amd64$/);

	const object = fs.readFileSync(path.join(packageRoot, 'bpf', 'affinity.bpf.o'));
	const loaded = await first.load('affinity', RecordType.affinity, object);
	t.ok(loaded.id > 0, `program id ${loaded.id}`);
	t.equal(loaded.links, 3, 'all three BPF programs attached (set-affinity, exit, and the snapshot iterator)');
	const list = await first.list();
	t.same(
		list.map((p) => [p.id, p.name, p.recordType]),
		[[loaded.id, 'affinity', RecordType.affinity]],
	);
	t.notOk(guest.lines.includes(readyLine), 'the guest is not ready while its host has not said LIVE');
	await first.live(1);
	await guest.waitFor(readyLine, 30_000);
	const live = guest.lines.indexOf('pvagent: hints live: the host loaded 1 programs');
	t.ok(live >= 0 && live < guest.lines.indexOf(readyLine), 'LIVE: the agent says so, then the guest is ready');

	const corrupt = Buffer.from(object);
	corrupt.fill(0x41, 64, 4096);
	const rejected = await first.load('broken', RecordType.affinity, corrupt).then(
		() => undefined,
		(error: unknown) => error,
	);
	t.ok(rejected instanceof AgentReplyError, 'a corrupt object is rejected with an agent error');
	t.ok(rejected instanceof AgentReplyError && rejected.errno > 0 && rejected.log.length > 0, "with an errno and libbpf's log");

	const head = () => area.view.getUint32(Header.ringHead, true);
	const flowing = async (what: string) => {
		const before = head();
		await new Promise((r) => setTimeout(r, 1000));
		t.ok(head() > before, `records flow into the shared ring ${what} (${before} -> ${head()})`);
	};
	await flowing('after a rejected load');

	// The host side goes away and comes back: the agent keeps its programs.
	first.close();
	await new Promise((r) => setTimeout(r, 500));
	const second = await AgentClient.connect(plan.agentSocket, 10_000);
	clients.push(second);
	const again = await second.hello(shmSize, 10_000);
	t.equal(again.programs, 1, 'the loaded program survived the host reconnecting');
	t.ok((await second.ping()) < 1000, 'ping answers');
	const stats = await second.stats();
	t.ok(stats.hostLinks >= 2, `the agent saw the host link twice (${stats.hostLinks})`);
	await second.unload(loaded.id);
	t.same(await second.list(), [], 'unloaded');
	await t.rejects(second.unload(loaded.id), AgentReplyError, 'unloading twice is an error');
	const before = head();
	await new Promise((r) => setTimeout(r, 600));
	t.equal(head(), before, 'no records once unloaded');
	const reloaded = await second.load('affinity', RecordType.affinity, object);
	t.ok(reloaded.id > loaded.id, 'loaded again under a new id');
	await flowing('after unload and reload');
});
