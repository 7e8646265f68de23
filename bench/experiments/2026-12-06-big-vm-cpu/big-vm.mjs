// node big-vm.mjs N PLACEMENT [PINS]: boot a default guest of N vCPUs through pvrun --pv-placement PLACEMENT; report boot→hello, program load, ready, and the
// host decision cost (applied events' hostUs) for PINS (50) pins of one thread to vCPU 1.
import fs from 'node:fs';
const root = new URL('../../../dist/', import.meta.url).href;
const {bootGuest, pvrunCommand} = await import(root + 'guest/boot.js');
const {ensureImage} = await import(root + 'image/build.js');
const image = await ensureImage();
const n = Number(process.argv[2] ?? 2);
const pins = Number(process.argv[4] ?? 50);
const placement = process.argv[3] ?? "auto";
const log = `/tmp/s36-big-${n}-${placement}.jsonl`;
fs.rmSync(log, {force: true});
const t0 = performance.now();
const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: n, memoryMiB: 1024, launcher: pvrunCommand('--pv-log', log, '--pv-placement', placement),
	run: `pvhint,wait,1,-n,${pins},-t,10000`});
await guest.waitFor('pvrun-guest: ready', 600000);
const ready = (performance.now() - t0) / 1000;
const line = await guest.waitFor(/^pvhint: vcpu=/, 600000);
await guest.stop();
const ev = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const at = (name) => ev.find((e) => e.event === name);
const hello = at('agent')?.ms, prog = ev.filter((e) => e.event === 'program');
const us = ev.filter((e) => e.event === 'applied').map((e) => e.hostUs).sort((a, b) => a - b);
const q = (p) => us[Math.min(us.length - 1, Math.floor(p * us.length))];
const pct = (list, p) => list.length ? list[Math.min(list.length - 1, Math.floor(p * list.length))] : null;
const fastUs = ev.filter((e) => e.event === 'applied' && e.fast).map((e) => e.hostUs).sort((a, b) => a - b);
const slowUs = ev.filter((e) => e.event === 'applied' && !e.fast).map((e) => e.hostUs).sort((a, b) => a - b);
fs.appendFileSync(`/tmp/s36-big-all.jsonl`, JSON.stringify({vcpus: n, placement, us: ev.filter((e) => e.event === 'applied').map((e) => [e.hostUs, e.fast])}) + '\n');
console.log(JSON.stringify({vcpus: n, placement, mode: at("placement")?.mode, fastP50: pct(fastUs, 0.5), fastP99: pct(fastUs, 0.99), slowP50: pct(slowUs, 0.5), slowP99: pct(slowUs, 0.99), readyS: +ready.toFixed(1), helloS: +(hello / 1000).toFixed(1), loadMs: prog.map((p) => p.loadMs), decisions: us.length, p50: q(0.5), p99: q(0.99), fast: ev.filter((e) => e.event === 'applied' && e.fast).length, guest: line}));
