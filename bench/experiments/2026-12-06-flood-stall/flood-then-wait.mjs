// Boot a 2-vCPU guest through pvrun whose guest floods affinity hints for 10 s (pvhint flood-pins flap),
// then waits up to 8 s for its own next hint (pvhint wait); print pvrun's helper's CPU ticks by
// thread each second, and its stall, cpu-hold, hint-summary and exit lines.
import fs from 'node:fs';
const root = new URL('../../../dist/', import.meta.url).href;
const {bootGuest, pvrunCommand} = await import(root + 'guest/boot.js');
const {ensureImage} = await import(root + 'image/build.js');
const image = await ensureImage();
const log = '/tmp/flood-then-wait.jsonl';
fs.rmSync(log, {force: true});
const guest = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 2, launcher: pvrunCommand('--pv-log', log),
	run: 'sleep,6;echo,flood,start;pvhint,flood-pins,10,flap;echo,pins,done;sleep,2;pvhint,wait,1,-n,1,-t,8000;sleep,2'});
await guest.waitFor('pvrun-guest: ready', 90000);
const dir = fs.readdirSync('/run/pvrun').find((n) => n.startsWith(`pvrun-${guest.pid}-`));
const helper = JSON.parse(fs.readFileSync(`/run/pvrun/${dir}/state.json`, 'utf8')).pvrunPid;
const threads = () => {
	const m = new Map();
	for (const tid of fs.readdirSync(`/proc/${helper}/task`)) {
		try {
			const s = fs.readFileSync(`/proc/${helper}/task/${tid}/stat`, 'utf8');
			const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
			const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
			m.set(`${tid}:${name}`, Number(f[11]) + Number(f[12]));
		} catch {}
	}
	return m;
};
let prev = threads();
let done = false;
guest.waitFor('pvhint: vcpu=1', 60000).then((l) => { console.log('guest:', l); done = true; });
const t0 = performance.now();
while (!done) {
	await new Promise((r) => setTimeout(r, 1000));
	const now = threads();
	const parts = [...now].map(([k, v]) => [k, v - (prev.get(k) ?? 0)]).filter(([, d]) => d > 0).map(([k, d]) => `${k}=${d}`);
	const marks = guest.lines.filter((l) => /flood|pins done/.test(l)).length;
	console.log(`${((performance.now() - t0) / 1000).toFixed(0)}s marks=${marks} ticks: ${parts.join(' ')}`);
	prev = now;
}
const ev = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
for (const e of ev.filter((e) => ['stall', 'cpu-hold', 'hint-summary', 'exit'].includes(e.event))) console.log(JSON.stringify(e).slice(0, 300));
await guest.stop();
const ev2 = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
for (const e of ev2.filter((e) => e.event === 'exit')) console.log(JSON.stringify(e).slice(0, 600));
