// Kernel modules for the guest: the dependency closure of the modules the
// hint channel needs, computed from modules.dep so the guest's modprobe loads
// them in dependency order.

/** Parse modules.dep into module path → dependency paths. */
export function parseModulesDep(text: string): Map<string, string[]> {
	const deps = new Map<string, string[]>();
	for (const line of text.split('\n')) {
		const colon = line.indexOf(':');
		if (colon <= 0) continue;
		const mod = line.slice(0, colon).trim();
		const rest = line.slice(colon + 1).trim();
		deps.set(mod, rest ? rest.split(/\s+/) : []);
	}
	return deps;
}

/** The module name of a path: kernel/drivers/virtio/virtio_pci.ko → virtio_pci. */
export function moduleNameOf(modulePath: string): string {
	const base = modulePath.slice(modulePath.lastIndexOf('/') + 1);
	return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/**
 * The closure of `wanted` (module names) under modules.dep, as module paths
 * sorted for reproducibility. Unknown names are returned in `missing`.
 */
export function moduleClosure(deps: Map<string, string[]>, wanted: string[]): {paths: string[]; missing: string[]} {
	const byName = new Map<string, string>();
	for (const p of deps.keys()) byName.set(moduleNameOf(p), p);
	const seen = new Set<string>();
	const missing: string[] = [];
	const visit = (p: string): void => {
		if (seen.has(p)) return;
		seen.add(p);
		for (const d of deps.get(p) ?? []) visit(d);
	};
	for (const name of wanted) {
		const p = byName.get(name.replace(/-/g, '_'));
		if (p === undefined) missing.push(name);
		else visit(p);
	}
	return {paths: [...seen].sort(), missing};
}

/** modules.dep text restricted to `paths` (each line keeps its full dependency list). */
export function trimmedModulesDep(deps: Map<string, string[]>, paths: string[]): string {
	return paths.map((p) => `${p}:${(deps.get(p) ?? []).map((d) => ` ${d}`).join('')}\n`).join('');
}
