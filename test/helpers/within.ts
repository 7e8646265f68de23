// Bounded waits for tests, in a module of their own: test/helpers/pvrun-vm.ts
// (which re-exports this) loads the image builder and execa, a second's work
// that a test without a guest need not pay for.

/** Poll `check` every `stepMs` until it returns true or `ms` pass; resolves to the elapsed ms or -1. */
export async function within(ms: number, check: () => boolean | Promise<boolean>, stepMs = 20): Promise<number> {
	const started = performance.now();
	while (performance.now() - started < ms) {
		if (await check()) return performance.now() - started;
		await new Promise((r) => setTimeout(r, stepMs));
	}
	return (await check()) ? performance.now() - started : -1;
}
