// node load.mjs N: boot a default guest of N vCPUs through pvrun, restart its agent with
// PVAGENT_TIMES=1 (pvrun loads the affinity program again), and print the agent's phases of that
// LOAD (guest time) beside pvrun's loadMs for it.
import fs from 'node:fs';
const root = new URL('../../../dist/', import.meta.url).href;
const {bootGuest, pvrunCommand} = await import(root + 'guest/boot.js');
const {ensureImage} = await import(root + 'image/build.js');
const image = await ensureImage();
const n = Number(process.argv[2] ?? 2);
const log = `/tmp/s36-load-${n}.jsonl`;
fs.rmSync(log, {force: true});
const guest = bootGuest({
	kernel: image.kernel,
	initrd: image.initrd,
	cpus: n,
	memoryMiB: 1024,
	launcher: pvrunCommand('--pv-log', log),
	run: 'sleep,2;kill,$(pidof,pvagent);sleep,2;PVAGENT_TIMES=1,pvagent&sleep,60',
});
await guest.waitFor('pvrun-guest: ready', 600000);
const line = await guest.waitFor(/^pvagent: times affinity/, 300000);
console.log(guest.lines.filter((l) => l.startsWith('pvagent:')).join('\n'));
await new Promise((r) => setTimeout(r, 2000));
await guest.stop();
const loads = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'program').map((e) => e.loadMs);
console.log(JSON.stringify({vcpus: n, loadMs: loads, agent: line}));
