// Boot the default image (this checkout's) through the pvrun build in DIR, 2 vCPUs; in the
// guest, MODE kick: stop the agent and write zeros into the kick port for 12 s; frames: stop
// the agent and write KICK frames into its port (pvhint flood-frames); hints: pvhint pins and
// releases back to back; sparse: the same 5 ms apart; flap: a thread pins itself and lets go
// without waiting (pvhint flood-pins); wide: masks that change nothing; idle: nothing. Prints
// pvrun's helper CPU % (of one CPU), its largest RSS and per-thread CPU ticks over 10 s of
// it, and the event log's growth per second.
// usage: node flood.mjs DIR [kick|frames|hints|sparse|flap|wide|idle]
import fs from 'node:fs';
import path from 'node:path';
const [dir, mode = 'kick'] = process.argv.slice(2);
const {bootGuest, pvrunCommand} = await import(path.join(dir, 'dist/guest/boot.js'));
const {ensureImage} = await import(new URL('../../../dist/image/build.js', import.meta.url).href);
const image = await ensureImage({});
const log = `/tmp/pvrun-flood-${process.pid}.jsonl`;
const flood = mode === 'kick'
	? 'p=$(grep,-l,org.pvrun.kick,/sys/class/virtio-ports/*/name);d=/dev/$(basename,$(dirname,$p));kill,$(pidof,pvagent);sleep,1;echo,flood,$d;timeout,12,cat,/dev/zero,>,$d;echo,flood,done'
	: mode === 'frames'
		? 'kill,$(pidof,pvagent);sleep,1;echo,flood,frames;pvhint,flood-frames,12;echo,flood,done'
	: mode === 'hints'
		? 'echo,flood,hints;pvhint,wait,1,-n,40000,-w,10;echo,flood,done'
	: mode === 'sparse'
		? 'echo,flood,sparse;pvhint,wait,1,-n,3000,-w,10,-p,5000;echo,flood,done'
	: mode === 'flap' || mode === 'wide'
		? `echo,flood,pins;pvhint,flood-pins,12,${mode};echo,flood,done`
		: 'echo,flood,idle;sleep,12;echo,flood,done';
const g = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, run: `sleep,3;${flood}`, launcher: pvrunCommand('--pv-log', log)});
const read = (p) => { try { return fs.readFileSync(p, 'utf8'); } catch { return ''; } };
try {
	await g.waitFor(/pvrun-guest: ready/, 60000);
	await g.waitFor(/^flood /, 30000);
	await new Promise((r) => setTimeout(r, 1000));
	const qemu = fs.readdirSync('/proc').find((p) => /^\d+$/.test(p) && read(`/proc/${p}/comm`).startsWith('qemu-system'));
	const helper = fs.readdirSync('/tmp').filter((n) => n.startsWith(`pvrun-${qemu}-`)).map((n) => JSON.parse(read(`/tmp/${n}/state.json`) || '{}').pvrunPid).find(Boolean);
	const cpu = () => { const f = read(`/proc/${helper}/stat`); const a = f.slice(f.lastIndexOf(')') + 2).split(' '); return (Number(a[11]) + Number(a[12])) / 100; };
	const rss = () => Number(/VmRSS:\s+(\d+)/.exec(read(`/proc/${helper}/status`))?.[1] ?? 0);
	const threads = () => Object.fromEntries(fs.readdirSync(`/proc/${helper}/task`).map((t) => { const f = read(`/proc/${helper}/task/${t}/stat`); const a = f.slice(f.lastIndexOf(')') + 2).split(' '); return [`${t}:${read(`/proc/${helper}/task/${t}/comm`).trim()}`, Number(a[11]) + Number(a[12])]; }));
	const shm = JSON.parse(read(log).split('\n')[0]).shm;
	const head = () => { try { const fd = fs.openSync(shm, 'r'); const b = Buffer.alloc(8); fs.readSync(fd, b, 0, 8, 72); fs.closeSync(fd); return Number(b.readBigUInt64LE()); } catch { return NaN; } };
	const h0 = head();
	const th0 = threads();
	const c0 = cpu(), s0 = fs.statSync(log).size, t0 = performance.now();
	let maxRss = 0;
	while (performance.now() - t0 < 10000) { maxRss = Math.max(maxRss, rss()); await new Promise((r) => setTimeout(r, 200)); }
	const secs = (performance.now() - t0) / 1000;
	console.log(JSON.stringify({dir, mode, cpuPct: Math.round((1000 * (cpu() - c0)) / secs) / 10, maxRssMB: Math.round(maxRss / 1024), logBytesPerSec: Math.round((fs.statSync(log).size - s0) / secs), recordsPerSec: Math.round((head() - h0) / secs), threads: Object.fromEntries(Object.entries(threads()).map(([k, v]) => [k, v - (th0[k] ?? 0)]).filter(([, v]) => v > 0))}));
} finally {
	await g.stop();
	if (process.env.KEEPLOG) fs.copyFileSync(log, process.env.KEEPLOG); fs.rmSync(log, {force: true});
}
