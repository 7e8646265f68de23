// Preloaded into every test process (package.json: tap's node-arg). The pvrun VMs of one test
// file lease CPUs in a lease directory of their own and do not look at the host's other QEMUs
// (docs/leases.md), so that test files running side by side do not take CPUs from each other.
// A test of leases between VMs gives its VMs one PVRUN_LEASE_DIR and the real PVRUN_HOST_ROOT.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

if (!process.env['PVRUN_LEASE_DIR']) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-test-host-'));
	process.env['PVRUN_LEASE_DIR'] = path.join(dir, 'leases');
	process.env['PVRUN_HOST_ROOT'] ??= path.join(dir, 'host');
	process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));
}
