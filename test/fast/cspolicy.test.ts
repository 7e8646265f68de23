// The critical-section policy (native/cspolicy.h): its structs against the
// TypeScript mirror, its rules on fixed cases, and its bounds under random
// sequences (the guest decides when sections open, so any sequence may come).
// The real lever on this host is in sched.test.ts, beside the other tests that
// load CPU 0 with real threads (one file: they run one after the other).
import t from 'tap';
import {fastPathAvailable} from '../../src/fast/binding.js';
import {
	BoostConfigLayout,
	BoostInputLayout,
	BoostMode,
	boostStatFields,
	boostStatsSize,
	boostVcpuFields,
	boostVcpuSize,
	decodeBoostVcpu,
	policyStep,
	type BoostConfig,
	type BoostInput,
} from '../../src/fast/sched.js';
import {cProbeNumbers} from '../helpers/c-probe.js';

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const probe = `
#include <stdio.h>
#include <stddef.h>
#include "cspolicy.h"
#include "pvsched.h"
#define P(name, value) printf("%s %lld\\n", name, (long long)(value))
#define F(s, m) P(#s "." #m, offsetof(struct s, m))
int main(void) {
	P("mode.normal", PVB_NORMAL); P("mode.boosted", PVB_BOOSTED); P("mode.payback", PVB_PAYBACK);
	P("sizeof.pvb_config", sizeof(struct pvb_config)); P("sizeof.pvb_input", sizeof(struct pvb_input));
	P("sizeof.pvb_vcpu", sizeof(struct pvb_vcpu)); P("sizeof.pvs_boost_stats", sizeof(struct pvs_boost_stats));
	F(pvb_config, max_ns); F(pvb_config, window_ns); F(pvb_config, budget_ns); F(pvb_config, payback_pct);
	F(pvb_input, now_ns); F(pvb_input, busy_ns); F(pvb_input, preemptions); F(pvb_input, host_state); F(pvb_input, in_section);
	F(pvb_vcpu, mode); ${boostVcpuFields.map((k) => `F(pvb_vcpu, ${snake(k).replace('_at_ns', '_at_ns')});`).join(' ')}
	${boostStatFields.map((k) => `F(pvs_boost_stats, ${snake(k)});`).join(' ')} F(pvs_boost_stats, last_error);
	return 0;
}
`;

t.test('src/fast/sched.ts matches native/cspolicy.h and pvsched.h', async (t) => {
	const c = await cProbeNumbers(t, probe, 'native');
	const expect: Array<[string, number]> = [
		['mode.normal', BoostMode.normal],
		['mode.boosted', BoostMode.boosted],
		['mode.payback', BoostMode.payback],
		['sizeof.pvb_config', BoostConfigLayout.size],
		['sizeof.pvb_input', BoostInputLayout.size],
		['sizeof.pvb_vcpu', boostVcpuSize],
		['sizeof.pvs_boost_stats', boostStatsSize],
		['pvb_config.max_ns', BoostConfigLayout.maxNs],
		['pvb_config.window_ns', BoostConfigLayout.windowNs],
		['pvb_config.budget_ns', BoostConfigLayout.budgetNs],
		['pvb_config.payback_pct', BoostConfigLayout.paybackPct],
		['pvb_input.now_ns', BoostInputLayout.nowNs],
		['pvb_input.busy_ns', BoostInputLayout.busyNs],
		['pvb_input.preemptions', BoostInputLayout.preemptions],
		['pvb_input.host_state', BoostInputLayout.hostState],
		['pvb_input.in_section', BoostInputLayout.inSection],
		['pvb_vcpu.mode', 0],
		...boostVcpuFields.map((k, i) => [`pvb_vcpu.${snake(k)}`, 8 + i * 8] as [string, number]),
		...boostStatFields.map((k, i) => [`pvs_boost_stats.${snake(k)}`, i * 8] as [string, number]),
		['pvs_boost_stats.last_error', boostStatFields.length * 8],
	];
	for (const [key, value] of expect) t.equal(c.get(key), value, key);
	t.equal(c.size, expect.length, 'every probed value is compared');
});

const skipNative = fastPathAvailable() === true ? false : String(fastPathAvailable());
const ms = 1e6;
const config: BoostConfig = {maxNs: 1 * ms, windowNs: 100 * ms, budgetNs: 10 * ms, paybackPct: 200};
const PREEMPTED = 2;
const RUNNING = 1;
const SLEEPING = 0;

/** A vCPU's policy state and a step function over it. */
function vcpu(c: BoostConfig = config) {
	const state = Buffer.alloc(boostVcpuSize);
	return {
		step: (i: BoostInput) => policyStep(c, state, i),
		get: () => decodeBoostVcpu(state),
	};
}

t.test('the rules, case by case', {skip: skipNative}, async (t) => {
	const v = vcpu();
	const at = (nowNs: number, rest: Partial<BoostInput> = {}): BoostInput => ({
		nowNs,
		busyNs: nowNs,
		preemptions: 1,
		hostState: RUNNING,
		inSection: false,
		...rest,
	});
	t.equal(v.step(at(1000 * ms)), BoostMode.normal, 'running, no section: normal');
	t.equal(v.step(at(1001 * ms, {hostState: PREEMPTED})), BoostMode.normal, 'preempted outside a section: normal');
	t.equal(v.step(at(1002 * ms, {hostState: PREEMPTED, inSection: true})), BoostMode.boosted, 'preempted inside a section: boosted');
	t.equal(v.get().untilNs - v.get().beganNs, 1 * ms, 'for max_ns');
	t.equal(v.step(at(1002.5 * ms, {inSection: true})), BoostMode.boosted, 'running in its section within max_ns: still boosted');
	t.equal(v.step(at(1003 * ms, {inSection: true})), BoostMode.normal, 'at max_ns: back to normal');
	t.match(v.get(), {boosts: 1, boostedNs: 1 * ms, debtNs: 2 * ms}, 'one boost of 1 ms, owing 2 ms');
	t.equal(v.get().tokensNs, 9.1 * ms, 'the bucket: 10 ms, less 1, plus 1 ms of refill at 10 %');
	t.equal(v.step(at(1004 * ms, {inSection: true})), BoostMode.normal, 'in a section with debt: no payback');
	t.equal(v.step(at(1005 * ms, {busyNs: 1000 * ms})), BoostMode.payback, 'out of its sections with debt: payback');
	t.equal(v.step(at(1006 * ms, {busyNs: 1001 * ms})), BoostMode.payback, 'runnable for 1 of the 2 ms owed: still paying');
	t.equal(v.step(at(1007 * ms, {busyNs: 1001 * ms, inSection: true})), BoostMode.normal, 'a section begins: the payback stops');
	t.match(v.get(), {debtNs: 1 * ms, paidNs: 1 * ms}, 'with what was paid counted');
	t.equal(v.step(at(1008 * ms, {busyNs: 1001 * ms})), BoostMode.payback, 'out again: paying the rest');
	t.equal(v.step(at(1020 * ms, {busyNs: 1001.5 * ms, hostState: SLEEPING})), BoostMode.payback, 'asleep: time passes, nothing is paid');
	t.equal(v.step(at(1021 * ms, {busyNs: 1002 * ms})), BoostMode.normal, 'runnable long enough: paid');
	t.match(v.get(), {debtNs: 0, paidNs: 2 * ms});

	const w = vcpu();
	w.step(at(2000 * ms, {hostState: PREEMPTED, inSection: true}));
	t.equal(w.step(at(2000.2 * ms, {hostState: SLEEPING, inSection: true})), BoostMode.normal, 'a boosted thread that sleeps: normal at once');
	t.match(w.get(), {boostedNs: 0.2 * ms, tokensNs: 9.82 * ms}, 'charged only what it used');

	const off = vcpu({...config, maxNs: 0});
	t.equal(off.step(at(3000 * ms, {hostState: PREEMPTED, inSection: true})), BoostMode.normal, 'max_ns 0: never boosted');
});

t.test('a guest that never leaves its sections: a few boosts, then none', {skip: skipNative}, async (t) => {
	const v = vcpu();
	for (let k = 0; k < 2000; k++) {
		const now = 5000 * ms + k * 0.5 * ms;
		v.step({nowNs: now, busyNs: now, preemptions: k, hostState: k % 2 ? RUNNING : PREEMPTED, inSection: true});
	}
	const s = v.get();
	t.ok(s.boosts >= 5 && s.boosts <= 11, `${s.boosts} boosts`);
	// Debt cap 20 ms (10 ms × 200 %): boosts stop once 10 ms of boost is owed.
	t.ok(s.boostedNs <= 11 * ms, `boost time stays under the debt cap's worth: ${s.boostedNs / ms} ms over 1 s`);
	t.ok(s.refused > 900, `and the preemptions after it are refused (${s.refused})`);
	t.equal(s.paidNs, 0, 'nothing is paid inside a section');
});

t.test('random sequences: every bound holds', {skip: skipNative}, async (t) => {
	let seed = 12345;
	const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0), seed / 2 ** 32);
	let checked = 0;
	for (let run = 0; run < 150; run++) {
		const c: BoostConfig = {
			maxNs: Math.floor(rand() * 3) === 0 ? 0 : Math.round((0.05 + rand() * 2) * ms),
			windowNs: Math.round((10 + rand() * 200) * ms),
			budgetNs: 0,
			paybackPct: [0, 50, 100, 200, 500][Math.floor(rand() * 5)] ?? 0,
		};
		c.budgetNs = Math.max(1, Math.round(c.windowNs * (0.01 + rand() * 0.3)));
		const v = vcpu(c);
		const start = 1e12 + Math.round(rand() * 1e12);
		let now = start;
		let busy = 0;
		let inSection = false;
		let preemptions = 0;
		for (let k = 0; k < 400; k++) {
			const dt = rand() < 0.1 ? Math.round(rand() * 300 * ms) : Math.round(rand() * 3 * ms);
			const hostState = Math.floor(rand() * 4);
			if (hostState !== SLEEPING) busy += dt;
			now += dt;
			if (rand() < 0.3) inSection = !inSection;
			if (hostState === PREEMPTED) preemptions++;
			const input = {nowNs: now, busyNs: busy, preemptions, hostState, inSection};
			const mode = v.step(input);
			const s = v.get();
			const where = `run ${run} step ${k}`;
			if (mode !== s.mode) t.fail(`${where}: returned mode ${mode}, state ${s.mode}`);
			if (mode === BoostMode.boosted) {
				if (c.maxNs === 0) t.fail(`${where}: boosted with max_ns 0`);
				if (s.untilNs - s.beganNs > c.maxNs) t.fail(`${where}: a boost longer than max_ns`);
				if (!inSection) t.fail(`${where}: boosted outside a section`);
				// A boost adds to the debt when it ends: the debt now is the one it was decided on.
				if (s.beganNs === now && s.debtNs >= (c.budgetNs * c.paybackPct) / 100 + (c.paybackPct === 0 ? 1 : 0))
					t.fail(`${where}: a new boost while the debt was at its cap (${s.debtNs} ns)`);
			}
			if (mode === BoostMode.payback && inSection) t.fail(`${where}: payback inside a section`);
			if (s.tokensNs > c.budgetNs) t.fail(`${where}: the bucket holds more than the budget`);
			// The token bucket's bound, boosts in progress counted whole.
			const ongoing = mode === BoostMode.boosted ? s.grantedNs : 0;
			if (s.boostedNs + ongoing > c.budgetNs + ((now - start) * c.budgetNs) / c.windowNs + 1)
				t.fail(`${where}: ${s.boostedNs + ongoing} ns boosted, more than the budget allows`);
			const everOwed = (s.boostedNs * c.paybackPct) / 100;
			if (s.paidNs > everOwed + s.boosts) t.fail(`${where}: more paid back than was owed`);
			if (s.debtNs + s.paidNs > everOwed + s.boosts) t.fail(`${where}: debt and payback exceed what boosts cost`);
			checked++;
		}
	}
	t.ok(checked === 150 * 400, `${checked} steps checked`);
});
