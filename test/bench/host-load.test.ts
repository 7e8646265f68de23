// What else the host runs while a benchmark does (src/bench/host-load.ts): a
// busy child of this process, even one that has ended, counts as the
// benchmark's own CPU time; the sampler summarises shares between 0 and 1.
import {execa} from 'execa';
import t from 'tap';
import {treeTicks, watchHostLoad} from '../../src/bench/host-load.js';

t.test("a child's CPU time is the tree's, also once it has ended", async (t) => {
	const before = treeTicks();
	const watch = watchHostLoad(200);
	// The child spends some CPU, however busy the host (a fixed loop), and says how much, before it ends.
	const child = await execa('sh', ['-c', 'i=0; while [ "$i" -lt 300000 ]; do i=$((i + 1)); done; cat /proc/$$/stat']);
	await new Promise((resolve) => setTimeout(resolve, 500));
	const load = watch.stop();
	const used = treeTicks() - before;
	const fields = child.stdout.slice(child.stdout.lastIndexOf(')') + 2).split(' ');
	const childTicks = Number(fields[11]) + Number(fields[12]);
	t.ok(childTicks > 0, `the child used ${childTicks} ticks`);
	t.ok(used >= childTicks, `the tree's ticks grew by at least the ended child's (${used} >= ${childTicks})`);
	t.ok(load && load.samples >= 2, `sampled every 200 ms (${load?.samples})`);
	t.ok(load && load.othersMedian >= 0 && load.othersMax <= 1 && load.othersMedian <= load.othersMax && load.stealMedian >= 0, JSON.stringify(load));
});
