import path from 'node:path';
const here='/work/main';
const {bootGuest,readyLine} = await import(path.join(here,'dist/guest/boot.js'));
const {ensureImage} = await import(path.join(here,'dist/image/build.js'));
const {procStatFields} = await import(path.join(here,'dist/host/proc.js'));
const image = await ensureImage();
const variants = process.argv.slice(2).map(s=>s.split('='));
const secs=Number(process.env.SECS??30);
for (let pair=0; pair<Number(process.env.PAIRS??3); pair++) for (const [name,dir] of (pair%2?[...variants].reverse():variants)) {
  const g = bootGuest({kernel:image.kernel, initrd:image.initrd, cpus:2, run:`sleep,${secs+20}`, launcher:[process.execPath, path.join(dir,'dist/cli/main.js')]});
  try { await g.waitFor(readyLine,60000); await new Promise(r=>setTimeout(r,5000));
    const t=()=>{const f=procStatFields(g.pid)??[]; return Number(f[14])+Number(f[15]);};
    const a=t(), s=performance.now(); await new Promise(r=>setTimeout(r,secs*1000));
    console.log(name, ((t()-a)/((performance.now()-s)/1000)).toFixed(2),'%');
  } finally { await g.stop(); }
}
