#!/usr/bin/env node
// Alternating A/B runs of the hint round trip, for changes too small to see
// across separate `pvrun bench hint-latency` runs (this machine's speed drifts
// by up to 2x within an hour). Each variant is a pvrun build: a directory like
// this checkout whose dist/ holds the variant (copy the checkout or symlink
// everything but dist/). Each run boots a fresh 2-vCPU guest through that
// build and runs `pvhint wait 1 -n HINTS -w 50 -v [pvhint args]` in it; runs
// alternate ABAB, BABA... and the table gives each run and the pooled runs.
//
//   node scripts/ab-hint-latency.mjs [--hints N] [--pairs N] [--keep DIR] NAME=DIR[+pvrun-arg...][,pvhint-arg...] ...
//
// --keep DIR keeps each run's event log (NAME-PAIR.jsonl) and pvhint's samples (NAME-PAIR.samples) there.
//
// Round trips are in the guest's clock (pin: until the host confirms the
// exclusive CPU; release: until it confirms the vCPU floats again); the host
// side is pvrun's own measure (records visible → affinity applied, `applied`
// events of its log), the first 100 decisions left out as warm-up; "stolen" is the share of
// this machine's CPU time its hypervisor took during the run (/proc/stat steal).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';

const {values, positionals} = parseArgs({
	allowPositionals: true,
	options: {hints: {type: 'string', default: '600'}, pairs: {type: 'string', default: '3'}, keep: {type: 'string'}},
});
const hints = Number(values.hints);
const pairs = Number(values.pairs);
if (!Number.isInteger(hints) || hints < 100 || !Number.isInteger(pairs) || pairs < 1 || positionals.length === 0) {
	process.stderr.write('usage: node scripts/ab-hint-latency.mjs [--hints N>=100] [--pairs N] NAME=DIR[+pvrun-arg...][,pvhint-arg...] ...\n');
	process.exit(2);
}
const here = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const say = (line) => process.stdout.write(`${line}\n`);
const {bootGuest} = await import(path.join(here, 'dist/guest/boot.js'));
const {ensureImage} = await import(path.join(here, 'dist/image/build.js'));
const {readEventLog} = await import(path.join(here, 'dist/vm/event-log.js'));
const {machineCpuTicks, stolenPercent} = await import(path.join(here, 'dist/host/proc.js'));
const variants = positionals.map((spec) => {
	const name = spec.slice(0, Math.max(0, spec.indexOf('=')));
	const rest = spec.slice(spec.indexOf('=') + 1);
	const [where, ...pvhintArgs] = (rest ?? '').split(',');
	const [dir, ...pvrunArgs] = (where ?? '').split('+');
	const main = path.resolve(dir ?? '', 'dist/cli/main.js');
	if (!name || !fs.existsSync(main)) {
		process.stderr.write(`ab-hint-latency: ${spec}: no pvrun build at ${main}\n`);
		process.exit(2);
	}
	return {name, main, pvhintArgs, pvrunArgs};
});
if (values.keep) fs.mkdirSync(values.keep, {recursive: true});
const image = await ensureImage();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-ab-'));
const pct = (a, p) => {
	const s = [...a].sort((x, y) => x - y);
	return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
};
const row = (label, r) =>
	`${label.padEnd(22)} pin p50 ${pct(r.pin, 0.5).toFixed(0).padStart(5)} p90 ${pct(r.pin, 0.9).toFixed(0).padStart(5)} p99 ${pct(r.pin, 0.99).toFixed(0).padStart(5)} | release p50 ${pct(r.unpin, 0.5).toFixed(0).padStart(5)} p99 ${pct(r.unpin, 0.99).toFixed(0).padStart(5)} | host p50 ${pct(r.host, 0.5).toFixed(1).padStart(6)} p90 ${pct(r.host, 0.9).toFixed(1).padStart(6)} p99 ${pct(r.host, 0.99).toFixed(1).padStart(6)} | fast path ${((100 * r.fast) / Math.max(1, r.host.length)).toFixed(0).padStart(3)} % | timeouts ${r.timeouts}${r.stolen === undefined ? '' : ` | stolen ${r.stolen.toFixed(2)} %`}`;
const all = new Map(variants.map((v) => [v.name, []]));
say(`${os.hostname()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? ''}), kernel ${os.release()}, ${new Date().toISOString()}`);
say(`${hints} hints per run after 50 warm-up, ${pairs} alternating pairs; all times in µs`);
try {
	for (let pair = 0; pair < pairs; pair++) {
		for (const v of pair % 2 ? [...variants].reverse() : variants) {
			const log = path.join(tmp, `${v.name}.jsonl`);
			fs.rmSync(log, {force: true});
			const extra = v.pvhintArgs.length ? `,${v.pvhintArgs.join(',')}` : '';
			const cpuBefore = machineCpuTicks();
			const guest = bootGuest({
				kernel: image.kernel,
				initrd: image.initrd,
				cpus: 2,
				run: `sleep,4;pvhint,wait,1,-n,${hints},-w,50,-v${extra}`,
				launcher: [process.execPath, v.main, '--pv-log', log, ...v.pvrunArgs],
			});
			try {
				const summary = await guest.waitFor(/^pvhint: /, 60_000 + hints * 200);
				const samples = guest.lines.filter((l) => l.startsWith('pvhint-sample: ')); // the measured hints only
				const field = (name) => samples.map((l) => Number(new RegExp(`${name}=([\\d.]+)`).exec(l)?.[1]));
				await guest.waitFor('command exited', 30_000);
				await guest.exited;
				const applied = readEventLog(log)
					.filter((e) => e.event === 'applied')
					.slice(100);
				const host = applied.map((e) => Number(e.hostUs));
				const r = {
					pin: field('pin_us'),
					unpin: field('unpin_us'),
					host,
					fast: applied.filter((e) => e.fast === true).length,
					timeouts: Number(/timeouts=(\d+)/.exec(summary)?.[1] ?? NaN),
					stolen: stolenPercent(cpuBefore, machineCpuTicks()),
				};
				if (values.keep) {
					fs.copyFileSync(log, path.join(values.keep, `${v.name}-${pair}.jsonl`));
					fs.writeFileSync(path.join(values.keep, `${v.name}-${pair}.samples`), `${samples.join('\n')}\n`);
				}
				all.get(v.name).push(r);
				say(row(v.name, r));
			} finally {
				await guest.stop();
			}
		}
	}
	for (const [name, runs] of all)
		say(
			row(`pooled ${name}`, {
				pin: runs.flatMap((r) => r.pin),
				unpin: runs.flatMap((r) => r.unpin),
				host: runs.flatMap((r) => r.host),
				fast: runs.reduce((n, r) => n + r.fast, 0),
				timeouts: runs.reduce((n, r) => n + r.timeouts, 0),
			}),
		);
} finally {
	fs.rmSync(tmp, {recursive: true, force: true});
}
