// node table.mjs: the fast path's table build (buildFastTable) by vCPU count, in-process, by priority
// on 2 CPUs: the base state (nothing granted) and the state with vCPU 1 granted; median µs of 200
// builds after 200 to warm up, and the entries and ops of each.
const root = new URL('../../../dist/', import.meta.url).href;
const {Pinner} = await import(root + 'pin/pinner.js');
const {buildFastTable} = await import(root + 'fast/table.js');
const {decideAffinity, floatingOnly, noneHeld} = await import(root + 'hints/affinity/policy.js');
const cpus = [0, 1];
const out = [];
for (const n of [2, 16, 64, 256]) {
	const pinner = new Pinner(new Map(Array.from({length: n}, (_, v) => [v, 1_000_000 + v])), process.pid, false, () => true);
	pinner.usePriority();
	// The stand-in thread ids are no process's: their nice value is taken as 0.
	pinner.niceFor = (_tid, offset) => offset;
	const base = floatingOnly(cpus);
	pinner.adopt(pinner.plan(base), () => false);
	const hint = {tid: 10, tgid: 10, comm: 'x', vcpus: [1], seq: 1};
	const granted = decideAffinity([hint], n, cpus, base);
	const states = {base: {hints: new Map(), a: base}, pinned: {hints: new Map([[10, hint]]), a: granted}};
	const row = {vcpus: n};
	for (const [name, s] of Object.entries(states)) {
		if (name === 'pinned') pinner.adopt(pinner.plan(granted), () => false);
		const build = () =>
			buildFastTable({
				hints: s.hints,
				assignment: s.a,
				nrVcpus: n,
				allowed: cpus,
				idle: new Set(),
				held: noneHeld,
				basedSeq: 1,
				canAddHint: true,
				plan: (a, assumed) => pinner.plan(a, assumed),
				floatingCpus: (a) => pinner.floatingCpus(a),
			});
		const times = [];
		let t;
		for (let i = 0; i < 400; i++) {
			const t0 = performance.now();
			t = build();
			if (i >= 200) times.push((performance.now() - t0) * 1000);
		}
		times.sort((x, y) => x - y);
		row[name] = {us: Math.round(times[100]), entries: t?.entries.length ?? 0, bytes: t?.bytes.length ?? 0};
	}
	out.push(row);
}
for (const r of out) console.log(JSON.stringify(r));
