// Sleeper with a forced placement: a busy sh loop started pinned to vCPU 0, then unpinned,
// so it sits beside the pinned sleeper. Variants: tag=plain | tag=pvrun[+pvarg...]. Mode: FORCE=1 (forced) or 0 (natural).
import fs from 'node:fs';
const root = process.env.ROOT ?? '/work/main';
const {bootGuest} = await import(`${root}/dist/guest/boot.js`);
const {ensureImage} = await import(`${root}/dist/image/build.js`);
const {readEventLog, loggedVm} = await import(`${root}/dist/vm/event-log.js`);
const image = await ensureImage();
const force = process.env.FORCE !== '0';
const ticks = (pid, tid) => { try { const f = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); } catch { return NaN; } };
const cpusAllowed = (pid, tid) => { try { return /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))[1]; } catch { return '?'; } };
const vcpuThreads = (pid) => { const out = []; for (const t of fs.readdirSync(`/proc/${pid}/task`)) { try { const c = fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim(); const m = /^CPU (\d+)\/TCG$/.exec(c); if (m) out[Number(m[1])] = Number(t); } catch {} } return out; };
const dump = "(i=0;while,[,$i,-lt,11,];do,sleep,1;echo,T,$(cat,/proc/$(pidof,pvwork)/task/*/stat|cut,-d',',-f39);i=$((i+1));done)&";
const run = process.env.FORCE === '2' ? `sleep,3;pvwork,sleeper,-c,0,-p,1000,-s,1,-b,3;${dump}pvwork,sleeper,-c,0,-p,1000,-s,10,-b,3` : force
  ? "sleep,2;taskset,-c,0,sh,-c,'while,:;do,:;done'&B=$!;sleep,1;taskset,-p,f,$B>/dev/null;pvwork,sleeper,-c,0,-p,1000,-s,10,-b,2;kill,$B"
  : "sleep,2;(sleep,8;cd,/proc/$(pidof,pvwork)/task;for,t,in,*;do,echo,T,$t,$(cut,-d',',-f39,$t/stat);done;cat,/proc/loadavg)&pvwork,sleeper,-c,0,-p,1000,-s,10,-b,3";
for (const spec of process.argv.slice(2)) {
  const [tag, ...pvargs] = spec.split('+');
  const pv = tag.startsWith('pvrun');
  const log = `/tmp/s7/slf-${tag}.jsonl`; fs.rmSync(log, {force: true});
  const g = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 4, run,
    qemuArgs: pv ? [] : ['-name', 'plain,debug-threads=on'],
    launcher: pv ? [process.execPath, `${root}/dist/cli/main.js`, '--pv-log', log, ...pvargs] : undefined});
  try {
    await g.waitFor('pvrun-guest: ready', 60000);
    await new Promise(r => setTimeout(r, 6000));
    const qpid = pv ? loggedVm(readEventLog(log)).qemuPid : g.pid;
    const th = vcpuThreads(qpid);
    const t0 = th.map(t => ticks(qpid, t));
    await new Promise(r => setTimeout(r, 4000));
    const t1 = th.map(t => ticks(qpid, t));
    const aff = th.map(t => cpusAllowed(qpid, t));
    const line = await g.waitFor(/pvwork-result/, 60000);
    await g.waitFor('command exited', 60000); await g.exited;
    const r = JSON.parse(line.slice(line.indexOf('{')));
    let events = '';
    if (pv) events = readEventLog(log).filter(e => ['pin','float','usage'].includes(e.event)).map(e => `${Math.round(e.ms)}:${e.event}${e.idle!==undefined?'/idle='+e.idle:''}${e.shared?'/shared':''}`).join(' ');
    console.log(`${new Date().toISOString().slice(11,19)} ${tag.padEnd(8)} p50 ${(r.p50Us/1000).toFixed(2)} p99 ${(r.p99Us/1000).toFixed(1)} ms max ${(r.maxUs/1000).toFixed(1)} ms burn ${r.burnPerSec ?? r.burnersPerSec ?? ''} | vCPU share ${t1.map((x,i)=>((x-t0[i])/400).toFixed(2)).join(' ')} | allowed ${aff.join(' ')} | ${events}`);
    console.log('   guest', g.lines.filter(l => /^T \d|^\d+\.\d+ /.test(l)).join(' | '));
  } finally { await g.stop(); }
}
