import t from 'tap';
import {moduleClosure, moduleNameOf, parseModulesDep, trimmedModulesDep} from '../../src/image/modules.js';

const dep = `kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko
`;

t.test('module names', async (t) => {
	t.equal(moduleNameOf('kernel/drivers/char/hw_random/virtio-rng.ko'), 'virtio_rng');
	t.equal(moduleNameOf('kernel/a/b.ko.xz'), 'b');
});

t.test('closure follows every dependency once, and only those', async (t) => {
	const deps = parseModulesDep(dep);
	const {paths, missing} = moduleClosure(deps, ['virtio_pci', 'virtio_console']);
	t.same(missing, []);
	t.same(paths, [
		'kernel/drivers/char/virtio_console.ko',
		'kernel/drivers/virtio/virtio.ko',
		'kernel/drivers/virtio/virtio_pci.ko',
		'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
		'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
		'kernel/drivers/virtio/virtio_ring.ko',
	]);
	const trimmed = trimmedModulesDep(deps, paths);
	t.notMatch(trimmed, /virtio-rng/);
	t.match(trimmed, /^kernel\/drivers\/char\/virtio_console\.ko: kernel\/drivers\/virtio\/virtio\.ko kernel\/drivers\/virtio\/virtio_ring\.ko$/m);
	t.same(parseModulesDep(trimmed).get('kernel/drivers/virtio/virtio_pci.ko')?.length, 4);
});

t.test('unknown modules are reported, dashes and underscores are one', async (t) => {
	const {paths, missing} = moduleClosure(parseModulesDep(dep), ['virtio-rng', 'no_such_mod']);
	t.same(missing, ['no_such_mod']);
	t.same(paths, ['kernel/drivers/char/hw_random/virtio-rng.ko', 'kernel/drivers/virtio/virtio.ko']);
});
