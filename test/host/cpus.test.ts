// CPU list parsing and formatting in the kernel's "0-3,5" form, and reading
// allowed CPUs from /proc.
import t from 'tap';
import {formatCpuList, MAX_CPU, ownCpus, parseCpuList, threadCpusAllowed} from '../../src/host/cpus.js';
import {PvrunError} from '../../src/util/errors.js';

t.test('lists parse to sorted, unique CPUs', async (t) => {
	t.same(parseCpuList('0-3,5,7-8'), [0, 1, 2, 3, 5, 7, 8]);
	t.same(parseCpuList('5'), [5]);
	t.same(parseCpuList('8,0-1,1,0'), [0, 1, 8]);
	t.same(parseCpuList(' 2-2 , 4\n'), [2, 4]);
	t.same(parseCpuList(`${MAX_CPU}`), [4095]);
	t.equal(parseCpuList('0-4095').length, 4096);
});

t.test('CPU sets format to the kernel form', async (t) => {
	t.equal(formatCpuList([0, 1, 2, 3, 5]), '0-3,5');
	t.equal(formatCpuList([8, 7, 5, 3, 2, 1, 0, 5]), '0-3,5,7-8');
	t.equal(formatCpuList([4]), '4');
	t.equal(formatCpuList([4, 5]), '4-5');
	t.equal(formatCpuList([]), '');
	t.throws(() => formatCpuList([1, 1.5]), PvrunError);
	t.throws(() => formatCpuList([-1]), PvrunError);
	t.throws(() => formatCpuList([4096]), PvrunError);
});

t.test('parse and format round-trip', async (t) => {
	for (const text of ['0', '0-1', '0-3,5,7-8', '1,3,5,7', '0-63,128-255,4095']) {
		t.equal(formatCpuList(parseCpuList(text)), text, text);
	}
	const cpus = [0, 2, 3, 4, 9, 10, 100];
	t.same(parseCpuList(formatCpuList(cpus)), cpus);
});

t.test('malformed lists are refused with a PvrunError naming the list', async (t) => {
	for (const text of ['3-1', 'a', '1,,2', '-1', '1-', '-', '', ',', '1,', '0-4096', '4096', '1 2', '1.5', '+1', '0x3', '1-2-3']) {
		t.throws(() => parseCpuList(text), {name: 'PvrunError', message: `invalid CPU list "${text}"`}, JSON.stringify(text));
	}
});

t.test('allowed CPUs come from /proc', async (t) => {
	const own = ownCpus();
	t.ok(own.length >= 1);
	t.same(threadCpusAllowed(process.pid, process.pid), own, 'the main thread is the process');
	t.throws(() => threadCpusAllowed(process.pid, 4_194_305), /does not exist/);
});
