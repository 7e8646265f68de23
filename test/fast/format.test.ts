// The TypeScript mirror of the fast path's binary formats (src/fast/format.ts)
// must match native/pvfast.h, the header the library is built with: compile a
// probe against it and compare every constant, size and offset.
import t from 'tap';
import {cProbeNumbers} from '../helpers/c-probe.js';
import * as F from '../../src/fast/format.js';

const fields = (struct: string, members: Record<string, string>) =>
	Object.entries(members)
		.map(([key, member]) => `P("${struct}.${key}", offsetof(struct ${struct}, ${member}));`)
		.join('\n');

const probe = `
#include <stdio.h>
#include <stddef.h>
#include "pvfast.h"
#define P(name, value) printf("%s %lld\\n", name, (long long)(value))
int main(void) {
	P("magic", PVF_TABLE_MAGIC); P("version", PVF_TABLE_VERSION);
	P("maxVcpus", PVF_MAX_VCPUS); P("maxHinted", PVF_MAX_HINTED); P("maxCpus", PVF_MAX_CPUS); P("maxApplied", PVF_MAX_APPLIED);
	P("niceKeep", PVF_NICE_KEEP); P("recordTid", PVF_RECORD_TID);
	P("kind.pin", PVF_NEW_PIN); P("kind.release", PVF_RELEASE);
	P("cpus.keep", PVF_CPUS_KEEP); P("cpus.one", PVF_CPUS_ONE); P("cpus.floating", PVF_CPUS_FLOATING);
	P("was.any", PVF_WAS_ANY); P("was.one", PVF_WAS_ONE); P("was.base", PVF_WAS_BASE); P("was.entry", PVF_WAS_ENTRY);
	P("group.none", PVF_GROUP_NONE); P("group.leave", PVF_GROUP_LEAVE); P("group.join", PVF_GROUP_JOIN); P("group.float", PVF_GROUP_FLOAT);
	P("sched.keep", PVF_SCHED_KEEP); P("sched.normal", PVF_SCHED_NORMAL); P("sched.fifo", PVF_SCHED_FIFO);
	P("phase.base", PVF_BASE); P("phase.pinned", PVF_PINNED);
	P("sizeof.pvf_table_hdr", sizeof(struct pvf_table_hdr)); P("sizeof.pvf_entry_hdr", sizeof(struct pvf_entry_hdr));
	P("sizeof.pvf_op", sizeof(struct pvf_op)); P("sizeof.pvf_feedback", sizeof(struct pvf_feedback));
	P("sizeof.pvf_applied", sizeof(struct pvf_applied)); P("sizeof.pvf_take_hdr", sizeof(struct pvf_take_hdr));
	P("sizeof.pvf_stats", sizeof(struct pvf_stats));
	P("maskWords", sizeof(((struct pvf_table_hdr *)0)->base_floating) / 8);
	${fields('pvf_table_hdr', {magic: 'magic', version: 'version', nrVcpus: 'nr_vcpus', nEntries: 'n_entries', nHinted: 'n_hinted', basedSeq: 'based_seq', baseFloating: 'base_floating'})}
	${fields('pvf_entry_hdr', {kind: 'kind', key: 'key', nOps: 'n_ops', nFeedback: 'n_feedback', nBackOps: 'n_back_ops', nBackFeedback: 'n_back_feedback', floating: 'floating'})}
	${fields('pvf_op', {tid: 'tid', cpus: 'cpus', pcpu: 'pcpu', nice: 'nice', was: 'was', wasPcpu: 'was_pcpu', group: 'group', sched: 'sched'})}
	${fields('pvf_feedback', {vcpu: 'vcpu', exclusive: 'exclusive', pcpu: 'pcpu', hintTid: 'hint_tid'})}
	${fields('pvf_applied', {entry: 'entry', back: 'back', tid: 'tid', seq: 'seq', latencyNs: 'latency_ns', failedOps: 'failed_ops', lastErrno: 'last_errno', movedOps: 'moved_ops'})}
	${fields('pvf_take_hdr', {valid: 'valid', phase: 'phase', cursor: 'cursor', count: 'count'})}
	${fields('pvf_stats', {kicks: 'kicks', applied: 'applied', noTable: 'no_table', notCovered: 'not_covered', invalid: 'invalid', pinErrors: 'pin_errors', demotions: 'demotions', connects: 'connects', wakeErrors: 'wake_errors', creditWaits: 'credit_waits', moved: 'moved'})}
	return 0;
}
`;

t.test('src/fast/format.ts matches native/pvfast.h', async (t) => {
	const c = await cProbeNumbers(t, probe, 'native');
	const struct = (name: string, mirror: Record<string, number>) =>
		Object.entries(mirror).map(([k, v]) => [k === 'size' ? `sizeof.${name}` : `${name}.${k}`, v] as const);
	const expect = new Map<string, number>([
		['magic', F.tableMagic],
		['version', F.tableVersion],
		['maxVcpus', F.tableMaxVcpus],
		['maxHinted', F.tableMaxHinted],
		['maxCpus', F.tableMaxCpus],
		['maxApplied', F.maxApplied],
		['niceKeep', F.niceKeep],
		['recordTid', F.feedbackRecordTid],
		['kind.pin', F.Kind.pin],
		['kind.release', F.Kind.release],
		['cpus.keep', F.Cpus.keep],
		['cpus.one', F.Cpus.one],
		['cpus.floating', F.Cpus.floating],
		['was.any', F.Was.any],
		['was.one', F.Was.one],
		['was.base', F.Was.base],
		['was.entry', F.Was.entry],
		['group.none', F.Group.none],
		['group.leave', F.Group.leave],
		['group.join', F.Group.join],
		['group.float', F.Group.float],
		['sched.keep', F.Sched.keep],
		['sched.normal', F.Sched.normal],
		['sched.fifo', F.Sched.fifo],
		['phase.base', F.Phase.base],
		['phase.pinned', F.Phase.pinned],
		['maskWords', F.maskWords],
		...struct('pvf_table_hdr', F.TableHeader),
		...struct('pvf_entry_hdr', F.EntryHeader),
		...struct('pvf_op', F.Op),
		...struct('pvf_feedback', F.Feedback),
		...struct('pvf_applied', F.Applied),
		...struct('pvf_take_hdr', F.TakeHeader),
		...F.statFields.map((k, i) => [`pvf_stats.${k}`, i * 8] as const),
		['sizeof.pvf_stats', F.statFields.length * 8],
	]);
	for (const [k, v] of expect) t.equal(v, c.get(k), k);
	t.same(
		[...c.keys()].filter((k) => k && !expect.has(k)),
		[],
		'every value the header defines is mirrored',
	);
});
