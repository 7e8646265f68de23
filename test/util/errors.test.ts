// The error tree: each class keeps its name, exit status and cause; the
// cause chain is what PVRUN_DEBUG=1 prints.
import t from 'tap';
import {AgentError, ImageError, PinError, PvrunError, QemuError, ShmError, UsageError, causeChain, firstLine} from '../../src/util/errors.js';

t.test('every class is a PvrunError with its own name; usage errors exit 2', async (t) => {
	for (const Kind of [UsageError, QemuError, AgentError, ShmError, PinError, ImageError]) {
		const e = new Kind('what to fix');
		t.ok(e instanceof PvrunError && e instanceof Error, `${Kind.name} is a PvrunError`);
		t.equal(e.name, Kind.name);
		t.equal(e.exitCode, Kind === UsageError ? 2 : 1);
	}
	t.equal(new QemuError('qemu-system-x86_64 not found', {exitCode: 127}).exitCode, 127);
});

t.test('the cause chain, outermost first, with errno codes', async (t) => {
	const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/x'"), {code: 'ENOENT'});
	const shm = new ShmError('cannot create shared memory /dev/shm/x: ENOENT', {cause: enoent});
	const usage = new UsageError('the VM cannot start', {cause: shm});
	t.same(causeChain(usage), [
		'UsageError: the VM cannot start',
		'ShmError: cannot create shared memory /dev/shm/x: ENOENT',
		"Error: ENOENT: no such file or directory, open '/x' (ENOENT)",
	]);
	t.same(causeChain('a string'), ['a string']);
	t.equal(firstLine(new Error('one\ntwo')), 'one');
});
