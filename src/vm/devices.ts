// pvrun's devices on the user's QEMU command line: the IVSHMEM area, the
// virtio-serial controller with the agent's (and the fast path's kick) port,
// and their backends. They must never take what the user's devices need:
//
// - Order. QEMU 7.2 creates every key=value -device before any JSON one, each
//   kind in command-line order. pvrun's devices are JSON and come last, so
//   they are created after all of the user's: an address a user device names
//   is never taken by one of pvrun's first (libvirt's balloon at slot 2 was).
// - Place. Both go on one PCI slot of the root bus (functions 0 and 1), the
//   highest slot that no user argument names, so that the low slots stay free
//   for what libvirt or the user hot-plugs later (libvirt assigns the lowest
//   free slot it knows of). Where pvrun cannot see every device (-readconfig,
//   a machine type it does not know), it names no slot and QEMU picks one
//   among those left free when pvrun's devices are created.
// - Names. The ids are fixed ('pvrun-...'), the same for every VM, so that a
//   saved VM (virsh managedsave, migration) finds its IVSHMEM RAM block and
//   devices again under a new pvrun. A user argument with one of these ids or
//   port names is refused before anything runs.
import {agentPortName, kickPortName} from '../agent/protocol.js';
import {UsageError} from '../util/errors.js';
import {machineType, qemuOptions, splitOptionList} from '../qemu/args.js';

/** The ids of pvrun's objects, chardevs and devices. */
export const channelIds = {
	memory: 'pvrun-shm',
	ivshmem: 'pvrun-ivshmem',
	serial: 'pvrun-vser',
	agentChardev: 'pvrun-agent',
	agentPort: 'pvrun-port',
	kickChardev: 'pvrun-kick',
	kickPort: 'pvrun-kport',
} as const;

/** Where pvrun's two PCI functions go: a slot on the root bus, or (undefined slot) where QEMU puts them. */
export interface ChannelPlace {
	bus?: string;
	slot?: number;
	/** Why there, in one line (for the event log and --pv-dry-run readers). */
	why: string;
}

/** The root PCI bus of the machine types pvrun knows, and the slots their boards take. */
const boards: ReadonlyArray<{type: RegExp; bus: string; reserved: readonly number[]}> = [
	// i440fx: host bridge 0, PIIX3 (ISA, IDE, USB, ACPI) 1.
	{type: /^(pc|pc-i440fx-.+|pc-\d.*)$/, bus: 'pci.0', reserved: [0, 1]},
	// q35: host bridge 0, ICH9 (LPC, SATA, SMBus) 0x1f.
	{type: /^(q35|pc-q35-.+)$/, bus: 'pcie.0', reserved: [0, 0x1f]},
];
/** Devices a board adds on its own at the lowest free slots, without -nodefaults (VGA, NIC). */
const boardDefaults = 2;
const maxSlot = 0x1f;

/** A -device (or -net nic / -drive) as far as placement goes. */
interface PlacedDevice {
	bus?: string;
	slot?: number;
}

/** The device options of a command line: driver-independent bus and slot. */
function placedDevices(args: readonly string[]): PlacedDevice[] {
	const devices: PlacedDevice[] = [];
	for (const {name, value} of qemuOptions(args)) {
		if (value === undefined) continue;
		if (name === 'device') devices.push(value.trimStart().startsWith('{') ? fromJson(value) : fromKeyval(value));
		// Legacy forms that create PCI devices: -net nic,addr=..., -drive if=virtio,addr=...
		else if ((name === 'net' && splitOptionList(value)[0] === 'nic') || (name === 'drive' && splitOptionList(value).includes('if=virtio')))
			devices.push(fromKeyval(value));
	}
	return devices;
}

function fromJson(value: string): PlacedDevice {
	let parsed: unknown;
	try {
		parsed = JSON.parse(value);
	} catch {
		return {}; // QEMU will refuse it itself
	}
	if (typeof parsed !== 'object' || parsed === null) return {};
	const o = parsed as Record<string, unknown>;
	const device: PlacedDevice = {};
	if (typeof o['bus'] === 'string') device.bus = o['bus'];
	const slot = slotOf(o['addr']);
	if (slot !== undefined) device.slot = slot;
	return device;
}

function fromKeyval(value: string): PlacedDevice {
	const device: PlacedDevice = {};
	for (const item of splitOptionList(value)) {
		if (item.startsWith('bus=')) device.bus = item.slice(4);
		else if (item.startsWith('addr=')) {
			const slot = slotOf(item.slice(5));
			if (slot !== undefined) device.slot = slot;
		}
	}
	return device;
}

/**
 * The slot a PCI `addr` names. As QEMU reads it: a string is hex "SLOT" or
 * "SLOT.FN", each with an optional 0x (libvirt writes "0x1.0x2"); a number
 * (JSON) is the devfn, slot << 3 | fn.
 */
export function slotOf(addr: unknown): number | undefined {
	if (typeof addr === 'number') return Number.isInteger(addr) && addr >= 0 && addr <= 0xff ? addr >> 3 : undefined;
	if (typeof addr !== 'string') return undefined;
	const m = /^(?:0x)?([0-9a-f]{1,2})(?:\.(?:0x)?[0-7])?$/i.exec(addr.trim());
	if (!m?.[1]) return undefined;
	const slot = parseInt(m[1], 16);
	return slot <= maxSlot ? slot : undefined;
}

/**
 * Where pvrun's PCI functions go on this command line (see the top of this
 * file). The machine type is the last -machine/-M type, qemu-system-x86_64's
 * default ('pc') without one.
 */
export function choosePlace(args: readonly string[]): ChannelPlace {
	let type = 'pc';
	let defaults = boardDefaults;
	for (const {name, value} of qemuOptions(args)) {
		if (name === 'readconfig') return {why: '-readconfig may add devices pvrun cannot see: QEMU picks a free slot'};
		if (name === 'machine' || name === 'M') type = machineType(value) ?? type;
		if (name === 'nodefaults') defaults = 0;
	}
	const board = boards.find((b) => b.type.test(type));
	if (!board) return {why: `machine type ${type}: QEMU picks the slot`};
	const devices = placedDevices(args);
	const onRoot = devices.filter((d) => d.bus === undefined || d.bus === board.bus);
	const named = new Set([...board.reserved, ...onRoot.flatMap((d) => (d.slot === undefined ? [] : [d.slot]))]);
	const unplaced = onRoot.filter((d) => d.slot === undefined).length;
	for (let slot = maxSlot; slot >= 0; slot--) {
		if (named.has(slot)) continue;
		// Devices without an address take the lowest free slots first: they must all fit below.
		let freeBelow = 0;
		for (let s = 0; s < slot; s++) if (!named.has(s)) freeBelow++;
		if (freeBelow < unplaced + defaults) break;
		return {bus: board.bus, slot, why: `the highest slot of ${board.bus} that no device of the command line names`};
	}
	throw new UsageError(
		`no free PCI slot on ${board.bus} for pvrun's hint channel: the command line's devices take them all; free one slot, or run with --pv-off`,
	);
}

/** What the hint channel's arguments need to know. */
export interface ChannelFiles {
	shmPath: string;
	shmSize: number;
	agentSocket: string;
	/** The kick port's socket, when the native fast path runs. */
	kickSocket?: string;
}

/** pvrun's arguments for QEMU: backends in key=value form, devices in JSON (created after the user's). */
export function channelArgs(files: ChannelFiles, place: ChannelPlace): string[] {
	const at = (fn: number): Record<string, string | boolean> => {
		if (place.bus === undefined || place.slot === undefined) return {};
		const addr = `0x${place.slot.toString(16)}.${fn}`;
		return fn === 0 ? {bus: place.bus, addr, multifunction: true} : {bus: place.bus, addr};
	};
	const device = (fields: Record<string, string | boolean>) => ['-device', JSON.stringify(fields)];
	const ids = channelIds;
	// An option and its value stay on one line.
	// prettier-ignore
	const args = [
		'-object', `memory-backend-file,id=${ids.memory},size=${files.shmSize},share=on,mem-path=${files.shmPath}`,
		'-chardev', `socket,id=${ids.agentChardev},path=${files.agentSocket},server=on,wait=off`,
		// master=on: the one peer of its shared memory, so QEMU lets the VM be saved or migrated (in
		// "peer mode", QEMU's default, it refuses); the area's bytes go along with the rest.
		...device({driver: 'ivshmem-plain', id: ids.ivshmem, memdev: ids.memory, master: 'on', ...at(0)}),
		// ioeventfd=off: the agent's KICK is handled in the vCPU thread that writes it, not
		// handed to QEMU's main loop first (one thread wake-up less; hint p50 -30 % in A/B runs).
		...device({driver: 'virtio-serial-pci', id: ids.serial, ioeventfd: false, ...at(1)}),
		...device({driver: 'virtserialport', id: ids.agentPort, bus: `${ids.serial}.0`, chardev: ids.agentChardev, name: agentPortName}),
	];
	if (files.kickSocket !== undefined) {
		// prettier-ignore
		args.push(
			'-chardev', `socket,id=${ids.kickChardev},path=${files.kickSocket},server=on,wait=off`,
			...device({driver: 'virtserialport', id: ids.kickPort, bus: `${ids.serial}.0`, chardev: ids.kickChardev, name: kickPortName}),
		);
	}
	return args;
}

/**
 * Refuse a command line that already uses one of pvrun's ids or port names
 * (a pvrun command line copied from --pv-dry-run, or pvrun run twice over):
 * QEMU would stop with a duplicate id, or two agents' ports would collide.
 */
export function checkNoClash(args: readonly string[]): void {
	const taken = new Set<string>(Object.values(channelIds));
	for (const {name, value} of qemuOptions(args)) {
		if (value === undefined) continue;
		const ids = value.trimStart().startsWith('{')
			? jsonStrings(value, ['id', 'name'])
			: splitOptionList(value).flatMap((item) => (/^(id|name)=/.test(item) ? [item.slice(item.indexOf('=') + 1)] : []));
		const clash = ids.find((id) => taken.has(id) || id.startsWith('org.pvrun.'));
		if (clash !== undefined)
			throw new UsageError(
				`-${name} uses ${JSON.stringify(clash)}, a name pvrun gives its own hint channel (a command line from --pv-dry-run?): remove that option, or run with --pv-off`,
			);
	}
}

/** The string values of `keys` in a JSON object option ([] if it is not one). */
function jsonStrings(value: string, keys: readonly string[]): string[] {
	try {
		const parsed: unknown = JSON.parse(value);
		if (typeof parsed !== 'object' || parsed === null) return [];
		return keys.map((k) => (parsed as Record<string, unknown>)[k]).filter((v): v is string => typeof v === 'string');
	} catch {
		return [];
	}
}
