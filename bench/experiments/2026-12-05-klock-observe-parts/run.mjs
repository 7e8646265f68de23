// Alternating boots of klock (4 vCPUs, 4 threads) under pvrun, pvrun --pv-cs observe, and
// observe with one part of the kernel-lock program (bpf/cs.bpf.c) switched off: the variant's
// object replaces bpf/cs.bpf.o for its boot (pvrun sends the object to the guest agent at
// start), and the original is put back at the end. One line per boot: variant, klock's
// operations/s, call-function IPIs and guest context switches per operation.
// usage: node run.mjs ROUNDS SECONDS VARIANT...   (after `make build`); a variant is pvrun,
// observe, or NAME for the object cs-NAME.bpf.o here (variants.py, then clang as in bpf/Makefile)
import fs from 'node:fs';
import path from 'node:path';
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';

const [rounds = '5', secs = '5', ...variants] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const live = path.join(here, '../../../bpf/cs.bpf.o');
const saved = path.join(here, 'cs-original.bpf.o');
fs.copyFileSync(live, saved);
const image = await ensureImage({});
const look = 'grep,-e,CAL,/proc/interrupts;grep,ctxt,/proc/stat';
const sum = (l) => l.trim().split(/\s+/).slice(1, 5).map(Number).reduce((a, b) => a + b, 0);
try {
	for (let r = 0; r < Number(rounds); r++)
		for (const v of variants) {
			// NAME+proc: the same with the host's /proc feedback (no host BPF program, no pvrun-sched).
			const [name, proc] = v.split('+');
			fs.copyFileSync(name === 'pvrun' || name === 'observe' ? saved : path.join(here, `cs-${name}.bpf.o`), live);
			const g = bootGuest({
				kernel: image.kernel,
				initrd: image.initrd,
				cpus: 4,
				run: `sleep,2;${look};pvwork,klock,-t,4,-s,${secs};${look}`,
				launcher:
					name === 'pvrun' ? pvrunCommand() : pvrunCommand('--pv-cs', 'observe', ...(proc ? ['--pv-cs-feedback', 'proc'] : [])),
			});
			try {
				await g.waitFor(readyLine, 120000);
				await g.waitFor(/command exited with status/, 300000);
				const cal = g.lines.filter((l) => /^CAL:/.test(l)).map(sum);
				const ctxt = g.lines.filter((l) => /^ctxt /.test(l)).map((l) => Number(l.split(' ')[1]));
				const res = g.lines.find((l) => l.startsWith('pvwork-result'));
				const ops = res ? JSON.parse(res.slice(res.indexOf('{'))).ops : NaN;
				const perSec = res ? JSON.parse(res.slice(res.indexOf('{'))).opsPerSec : NaN;
				console.log(
					[r, v, perSec, ((cal[1] - cal[0]) / ops).toFixed(2), ((ctxt[1] - ctxt[0]) / ops).toFixed(2)].join('\t'),
				);
			} finally {
				await g.stop();
			}
		}
} finally {
	fs.copyFileSync(saved, live);
	fs.rmSync(saved);
}
