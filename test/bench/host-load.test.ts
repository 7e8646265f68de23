// What else the host runs while a benchmark does (src/bench/host-load.ts): a
// busy child of this process, even one that has ended, counts as the
// benchmark's own CPU time; the sampler summarises shares between 0 and 1.
import {execa} from 'execa';
import t from 'tap';
import {treeTicks, watchHostLoad} from '../../src/bench/host-load.js';

t.test("a child's CPU time is the tree's, also once it has ended", async (t) => {
	const before = treeTicks();
	const watch = watchHostLoad(200);
	await execa('sh', ['-c', 'end=$(($(date +%s) + 2)); while [ "$(date +%s)" -lt "$end" ]; do :; done']);
	const load = watch.stop();
	const used = treeTicks() - before;
	t.ok(used >= 50, `the ended child's ~2 s of CPU are counted (${used} ticks)`);
	t.ok(load && load.samples >= 5, `sampled every 200 ms (${load?.samples})`);
	t.ok(load && load.othersMedian >= 0 && load.othersMax <= 1 && load.othersMedian <= load.othersMax, JSON.stringify(load));
});
