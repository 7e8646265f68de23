// What a boot that never reaches its console line reports: a launcher that
// stands in for QEMU (a real process) prints on stderr and hangs; what its
// threads did on the host follows.
import t from 'tap';
import {bootArgs, bootGuest} from '../../src/guest/boot.js';
import {ownCpus} from '../../src/host/cpus.js';

t.test('a console that prints nothing: the timeout says so and shows what QEMU said on stderr', async (t) => {
	// sh -c SCRIPT NAME ARGS...: the boot arguments land in $1..., unused.
	const guest = bootGuest({
		kernel: '/nonexistent',
		initrd: '/nonexistent',
		launcher: ['sh', '-c', 'echo "qemu: something went wrong" >&2; exec sleep 30', 'stand-in'],
	});
	t.teardown(() => guest.stop());
	await t.rejects(
		guest.waitFor('pvrun-guest: ready', 500),
		/within 500 ms; the console printed nothing\nQEMU's stderr: qemu: something went wrong\nhost over 1\.\d s: load .*\n\d+: sleep S 0% .*in \w+ on [\d,-]+\nvCPU registers: the monitor did not answer in 2 s$/,
		"and then what the launcher's threads did on the host over the next second, and that no monitor answered",
	);
});

t.test('a console that printed something: its last lines, as before', async (t) => {
	const guest = bootGuest({kernel: '/nonexistent', initrd: '/nonexistent', launcher: ['sh', '-c', 'echo booting; exec sleep 30', 'stand-in']});
	t.teardown(() => guest.stop());
	await t.rejects(guest.waitFor('pvrun-guest: ready', 500), /within 500 ms; last lines:\nbooting\nhost over/);
});

t.test('extra kernel words go after the run command; hostCpus starts the launcher under taskset', async (t) => {
	const args = bootArgs({kernel: 'k', initrd: 'i', run: 'sh,/x.sh', append: ['loglevel=3']});
	t.match(args[args.indexOf('-append') + 1], /pvrun\.run=sh,\/x\.sh loglevel=3$/);
	// The stand-in prints the CPUs it may run on, as QEMU's threads would inherit them.
	const cpu = ownCpus().at(-1) ?? 0;
	const guest = bootGuest({
		kernel: 'k',
		initrd: 'i',
		hostCpus: [cpu],
		launcher: ['sh', '-c', 'grep Cpus_allowed_list /proc/self/status; exec sleep 30', 'stand-in'],
	});
	t.teardown(() => guest.stop());
	t.match(await guest.waitFor('Cpus_allowed_list', 5000), new RegExp(`Cpus_allowed_list:\\s+${cpu}$`));
});
