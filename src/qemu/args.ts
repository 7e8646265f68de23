// QEMU's own command-line grammar, as far as pvrun needs it: which options
// take a value (so that pvrun never looks inside one), which command lines run
// no guest (so that pvrun passes them through untouched), and the VM's name.
//
// QEMU reads argv in lookup_opt() (softmmu/vl.c): an argument that does not
// start with '-' (also the empty string) is a disk image; '--name' is the same
// option as '-name'; an option declared HAS_ARG in qemu-options.hx takes the
// next argument as its value whatever it looks like ('-x', '--pv-off', ''),
// every other option takes none. There is no '-opt=value' form.

/**
 * The options QEMU 7.2 declares without HAS_ARG in qemu-options.hx. QEMU's
 * table holds every target's options (another target's are rejected only
 * later, e.g. -semihosting), so these are all 0-argument options of
 * qemu-system-x86_64 7.2; read from the table compiled into Debian 12's
 * qemu-system-x86 (1:7.2+dfsg-7). Every other option takes exactly one value.
 * test/cli/qemu-options.test.ts checks this against the installed QEMU.
 */
export const qemuFlagOptions: ReadonlySet<string> = new Set([
	'h',
	'help',
	'version',
	'audio-help',
	'mem-prealloc',
	'snapshot',
	'usb',
	'nographic',
	'portrait',
	'full-screen',
	'win2k-hack',
	'no-fd-bootchk',
	'no-acpi',
	'no-hpet',
	'singlestep',
	'preconfig',
	'S',
	's',
	'enable-kvm',
	'xen-attach',
	'xen-domid-restrict',
	'no-reboot',
	'no-shutdown',
	'daemonize',
	'only-migratable',
	'nodefaults',
	'no-user-config',
	'semihosting',
	'old-param',
	'async-teardown',
	'enable-sync-profile',
]);

/** The option name QEMU looks up for `arg` ('-m' and '--m' → 'm'), or undefined for a disk image. */
export function qemuOptionName(arg: string): string | undefined {
	if (!arg.startsWith('-')) return undefined;
	return arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
}

/** How many of the following arguments QEMU takes as the value of `arg`: 0 or 1. */
export function qemuValueCount(arg: string): 0 | 1 {
	const name = qemuOptionName(arg);
	return name === undefined || qemuFlagOptions.has(name) ? 0 : 1;
}

/** One option of a QEMU command line. */
export interface QemuOption {
	/** The name without dashes ('machine' for '--machine'). */
	name: string;
	/** Its value; undefined for a flag, or when the command line ends where the value should be. */
	value: string | undefined;
	/** Where the option is in the argument list. */
	index: number;
}

/** The options of a QEMU command line in order, each with its value; disk images are left out. */
export function qemuOptions(args: readonly string[]): QemuOption[] {
	const options: QemuOption[] = [];
	for (let i = 0; i < args.length; i++) {
		const arg = args[i] ?? '';
		const name = qemuOptionName(arg);
		if (name === undefined) continue;
		if (qemuValueCount(arg) === 0) options.push({name, value: undefined, index: i});
		else {
			options.push({name, value: args[i + 1], index: i});
			i++;
		}
	}
	return options;
}

/**
 * The comma-separated items of a QemuOpts/keyval value, with QEMU's escape
 * ',,' for a literal comma undone: 'a,b=c,,d' → ['a', 'b=c,d'].
 */
export function splitOptionList(value: string): string[] {
	const items: string[] = [];
	let item = '';
	for (let i = 0; i < value.length; i++) {
		const c = value[i];
		if (c !== ',') item += c;
		else if (value[i + 1] === ',') {
			item += ',';
			i++;
		} else {
			items.push(item);
			item = '';
		}
	}
	items.push(item);
	return items;
}

/** Options whose value QEMU answers with a list or help text when an item is 'help' or '?' (checked on QEMU 7.2). */
const helpQueryOptions: ReadonlySet<string> = new Set([
	'machine',
	'M',
	'cpu',
	'accel',
	'device',
	'object',
	'netdev',
	'chardev',
	'audiodev',
	'audio',
	'display',
	'd',
	'trace',
	'vga',
	'tpmdev',
	'global',
	'smp',
	'boot',
	'rtc',
	'action',
	'msg',
	'overcommit',
	'spice',
	'iscsi',
	'add-fd',
]);

/** KEY=help queries: `-device driver=help`, `-drive format=help`... (checked on QEMU 7.2). */
const helpQueryKeys: ReadonlyMap<string, string> = new Map([
	['machine', 'type'],
	['M', 'type'],
	['accel', 'accel'],
	['device', 'driver'],
	['object', 'qom-type'],
	['drive', 'format'],
	['audio', 'model'],
	['trace', 'enable'],
]);

/** Flags after which QEMU prints something and exits without creating a guest. */
const infoFlags: ReadonlySet<string> = new Set(['h', 'help', 'version', 'audio-help']);

const isHelp = (text: string | undefined): boolean => text === 'help' || text === '?';

/** Whether `-name value` asks QEMU for help instead of configuring something. */
function isHelpQuery(name: string, value: string | undefined): boolean {
	// JSON values ('{"driver":...}') have no help form: QEMU rejects "help" in them.
	if (value === undefined || value.startsWith('{')) return false;
	const key = helpQueryKeys.get(name);
	return splitOptionList(value).some((item) => {
		if (helpQueryOptions.has(name) && isHelp(item)) return true;
		if (key === undefined || !item.startsWith(`${key}=`)) return false;
		return isHelp(item.slice(key.length + 1));
	});
}

/** The machine type a -machine value names, if it names one (first item, or type=...). */
export function machineType(value: string | undefined): string | undefined {
	if (value === undefined) return undefined;
	if (value.startsWith('{')) {
		try {
			const parsed: unknown = JSON.parse(value);
			const type = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['type'] : undefined;
			return typeof type === 'string' ? type : undefined;
		} catch {
			return undefined;
		}
	}
	let type: string | undefined;
	for (const [i, item] of splitOptionList(value).entries()) {
		if (item.startsWith('type=')) type = item.slice('type='.length);
		else if (i === 0 && !item.includes('=')) type = item;
	}
	return type;
}

/** An option as the user wrote it, for messages (long values cut, one line). */
function spelled(name: string, value: string | undefined): string {
	if (value === undefined) return `-${name}`;
	const short = value.length > 40 ? `${value.slice(0, 40)}...` : value;
	return `-${name} ${/^[\w.,:=?/+-]+$/.test(short) ? short : JSON.stringify(short)}`;
}

/**
 * Why this QEMU command line must run exactly as given, or undefined when it
 * runs a guest (and pvrun adds its hint channel). Such command lines run no
 * guest: an informational query (-version, -help, -device help, -cpu ?, ...),
 * -dump-vmstate, or machine type none (libvirt's capability probe:
 * `-machine none,accel=kvm:tcg -qmp ... -daemonize`), where pvrun's devices
 * would be refused (no PCI bus) or would change what QEMU reports.
 */
export function passthroughReason(args: readonly string[]): string | undefined {
	let machine: string | undefined;
	for (const {name, value} of qemuOptions(args)) {
		if (infoFlags.has(name) || isHelpQuery(name, value)) return `${spelled(name, value)} only prints information`;
		if (name === 'dump-vmstate') return `${spelled(name, value)} writes the machine's vmstate description and exits`;
		// QEMU merges repeated -machine options; a later type replaces an earlier one.
		if (name === 'machine' || name === 'M') machine = machineType(value) ?? machine;
	}
	if (machine === 'none') return "-machine none runs no guest (as in libvirt's capability probe)";
	return undefined;
}

/** The guest name the user gave with -name (`-name vm1` or `-name guest=vm1,...`), if any; the last one wins. */
export function guestName(args: readonly string[]): string | undefined {
	let guest: string | undefined;
	for (const {name, value} of qemuOptions(args)) {
		if (name !== 'name' || value === undefined) continue;
		for (const [i, item] of splitOptionList(value).entries()) {
			if (item.startsWith('guest=')) guest = item.slice('guest='.length);
			else if (i === 0 && !item.includes('=')) guest = item;
		}
	}
	return guest;
}

/** Options whose value names a character backend, 'stdio' among them ('-serial mon:stdio', '-chardev stdio,id=c'). */
const backendOptions: ReadonlySet<string> = new Set(['serial', 'parallel', 'monitor', 'qmp', 'qmp-pretty', 'debugcon', 'chardev', 'gdb', 'virtioconsole']);

/**
 * Whether QEMU, run with these arguments, draws on its standard input and
 * output (a character device on stdio, -nographic's default console and
 * monitor, a curses display): then pvrun's terminal is the guest's console,
 * and a line of pvrun's could land in the middle of one of the guest's.
 */
export function usesStdio(args: readonly string[]): boolean {
	let nographic = false;
	let nodefaults = false;
	for (const {name, value} of qemuOptions(args)) {
		if (name === 'nographic') nographic = true;
		else if (name === 'nodefaults') nodefaults = true;
		else if (name === 'curses') return true;
		else if (value === undefined) continue;
		else if (name === 'display' && splitOptionList(value)[0] === 'curses') return true;
		else if (backendOptions.has(name)) {
			// The backend is the first item ('stdio', 'mon:stdio') or, for -chardev, may be spelled backend=stdio.
			const items = splitOptionList(value);
			if (items[0] === 'stdio' || items[0] === 'mon:stdio' || (name === 'chardev' && items.includes('backend=stdio'))) return true;
		}
	}
	// -nographic sends the default serial port (or, without one, the monitor) to stdio.
	return nographic && !nodefaults;
}

/** The vCPU count QEMU will create from -smp (maxcpus for hot-plug), default 1. */
export function vcpuCount(qemu: readonly string[]): number {
	let count = 1;
	for (const option of qemuOptions(qemu)) {
		if (option.name !== 'smp') continue;
		const value = option.value ?? '';
		const fields = new Map<string, number>();
		for (const [k, part] of value.split(',').entries()) {
			const [key, v] = part.includes('=') ? part.split('=', 2) : [k === 0 ? 'cpus' : part, ''];
			if (key) fields.set(key, Number(v ?? ''));
		}
		const first = value.split(',')[0] ?? '';
		if (/^\d+$/.test(first)) fields.set('cpus', Number(first));
		const cpus = fields.get('maxcpus') || fields.get('cpus') || 0;
		if (cpus > 0) count = cpus;
		else {
			const product = ['sockets', 'dies', 'clusters', 'cores', 'threads'].reduce((p, k) => p * (fields.get(k) || 1), 1);
			count = product;
		}
	}
	return count;
}

/** Whether the user chose an accelerator themselves (pvrun then adds none). */
export function userChoseAccel(qemu: readonly string[]): boolean {
	return qemuOptions(qemu).some(({name, value}) => {
		if (name === 'enable-kvm' || name === 'accel') return true;
		if (name === 'machine' || name === 'M') return /(^|,)accel=/.test(value ?? '');
		return false;
	});
}

/** Whether the user's -name already says debug-threads=... (pvrun then leaves it alone). */
export function userSetDebugThreads(qemu: readonly string[]): boolean {
	return qemuOptions(qemu).some(({name, value}) => name === 'name' && /(^|,)debug-threads=/.test(value ?? ''));
}
