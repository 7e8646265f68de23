// Who placed a thread, from its affinity as the kernel has it and what pvrun
// last set: pvrun, an operator who narrowed it, or someone who widened it.
import t from 'tap';
import {covers, placer, sameCpus} from '../../src/pin/operator.js';

t.test('who placed a thread', async (t) => {
	t.equal(placer([0, 1], [0, 1], [0, 1]), 'pvrun');
	t.equal(placer([1], [1], [0, 1]), 'pvrun');
	t.equal(placer([0], [0, 1], [0, 1]), 'operator', 'narrowed to a set pvrun did not set');
	t.equal(placer([0], [1], [0, 1]), 'operator');
	t.equal(placer([0, 1, 2, 3], [1], [0, 1]), 'widened', 'every allowed CPU (and more): pvrun places it again');
	t.equal(placer([0], undefined, [0, 1]), 'pvrun', 'nothing set yet');
	t.ok(covers([0, 1, 2], [0, 2]));
	t.notOk(covers([0], [0, 2]));
	t.ok(sameCpus([1, 0], [0, 1]), 'the same set in another order');
	t.notOk(sameCpus([0], [0, 1]));
});
