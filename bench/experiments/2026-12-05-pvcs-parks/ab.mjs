// Alternating boots of `pvwork uspin -l pvcs` (4 vCPUs, 4 threads, 1 and 10 µs of work) under
// pvrun --pv-cs act with the host program as built (bpf/vcpusched.bpf.o: a holder's vCPU wakes
// pvrun-sched at every change of "preempted") and with vcpusched-old.bpf.o here (at its
// preemption only; built from 32b4c42's bpf/vcpusched.bpf.c with the flags of bpf/Makefile),
// which replaces the object for its boot; the original is put back at the end. One line per
// boot and work length: variant, operations/s, stalled ms/s, parks.
// usage: node ab.mjs ROUNDS SECONDS   (after `make build`)
import fs from 'node:fs';
import path from 'node:path';
import {bootGuest, pvrunCommand, readyLine} from '../../../dist/guest/boot.js';
import {ensureImage} from '../../../dist/image/build.js';

const [rounds = '3', secs = '5'] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const live = path.join(here, '../../../bpf/vcpusched.bpf.o');
const saved = path.join(here, 'vcpusched-built.bpf.o');
fs.copyFileSync(live, saved);
const image = await ensureImage({});
const run = [1, 10].map((w) => `pvwork,uspin,-t,4,-l,pvcs,-w,${w},-s,${secs}`).join(';');
try {
	for (let r = 0; r < Number(rounds); r++)
		for (const v of ['new', 'old']) {
			fs.copyFileSync(v === 'new' ? saved : path.join(here, 'vcpusched-old.bpf.o'), live);
			const g = bootGuest({kernel: image.kernel, initrd: image.initrd, cpus: 4, run: `sleep,2;${run}`, launcher: pvrunCommand('--pv-cs', 'act')});
			try {
				await g.waitFor(readyLine, 120000);
				await g.waitFor(/command exited with status/, 300000);
				for (const l of g.lines.filter((x) => x.includes('pvwork-result'))) {
					const j = JSON.parse(l.slice(l.indexOf('{')));
					for (const u of j.runs ?? []) console.log([r, v, u.workUs, u.opsPerSec, u.stalledMsPerSec, u.parks].join('\t'));
				}
			} finally {
				await g.stop();
			}
		}
} finally {
	fs.copyFileSync(saved, live);
	fs.rmSync(saved);
}
