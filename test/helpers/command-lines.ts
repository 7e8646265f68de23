// Command lines that callers of QEMU really use, shared by the tests that
// check what pvrun makes of them.

/** libvirt 9's capability probe of an emulator (it runs no guest). */
export const libvirtProbe: string[] = [
	'-S',
	'-no-user-config',
	'-nodefaults',
	'-nographic',
	'-machine',
	'none,accel=kvm:tcg',
	'-qmp',
	'unix:/var/lib/libvirt/qemu/capabilities.monitor.sock,server=on,wait=off',
	'-pidfile',
	'/var/lib/libvirt/qemu/capabilities.pidfile',
	'-daemonize',
];
