// The binary formats between pvrun and its native fast path, mirrored from
// native/pvfast.h (test/fast/format.test.ts compiles a probe against that
// header and compares every constant, size and offset with these): the table
// pvrun publishes (table.ts writes it), and what the library reports back
// (binding.ts reads it). Little-endian, fixed width; docs/fast-path.md.

/** PVF_TABLE_MAGIC ("PVFT"), PVF_TABLE_VERSION. */
export const tableMagic = 0x54465650;
export const tableVersion = 4;
/** Limits of one table (PVF_MAX_*): beyond them, every decision takes the slow path. */
export const tableMaxVcpus = 64;
export const tableMaxHinted = 64;
export const tableMaxCpus = 256;
/** PVF_MAX_APPLIED: changes the fast path applies before pvrun has taken them. */
export const maxApplied = 64;
/** PVF_NICE_KEEP: an op that leaves the nice value alone. */
export const niceKeep = 0x7fffffff;
/** PVF_RECORD_TID: feedback's hint_tid meaning "the matched record's tid". */
export const feedbackRecordTid = 0xffffffff;
/** An entry's kind (PVF_NEW_PIN, PVF_RELEASE). */
export const Kind = {pin: 1, release: 2} as const;
/** An op's CPUs (PVF_CPUS_*): keep them, one CPU, or the entry's floating set. */
export const Cpus = {keep: 0, one: 1, floating: 2} as const;
/** What an op expects its thread's CPUs to be before it changes them (PVF_WAS_*): not checked, one CPU, the table's base floating set, the entry's floating set. */
export const Was = {any: 0, one: 1, base: 2, entry: 3} as const;
/** An op's part in the float group (PVF_GROUP_*): none, leave the floating cpuset, join it, write its CPUs. */
export const Group = {none: 0, leave: 1, join: 2, float: 3} as const;
/** An op's scheduling class (PVF_SCHED_*): kept, SCHED_OTHER (before the CPUs change), SCHED_FIFO 1 (after its one CPU is set). */
export const Sched = {keep: 0, normal: 1, fifo: 2} as const;
/** pvf_take_hdr.phase (PVF_BASE, PVF_PINNED). */
export const Phase = {base: 0, pinned: 1} as const;

/** struct pvf_table_hdr: offsets and size. */
export const TableHeader = {magic: 0, version: 4, nrVcpus: 8, nEntries: 12, nHinted: 16, basedSeq: 24, baseFloating: 32, size: 64} as const;
/** struct pvf_entry_hdr. */
export const EntryHeader = {kind: 0, key: 4, nOps: 8, nFeedback: 12, nBackOps: 16, nBackFeedback: 20, floating: 32, size: 64} as const;
/** struct pvf_op. */
export const Op = {tid: 0, cpus: 4, pcpu: 8, nice: 12, was: 16, wasPcpu: 20, group: 24, sched: 28, size: 32} as const;
/** struct pvf_feedback. */
export const Feedback = {vcpu: 0, exclusive: 4, pcpu: 8, hintTid: 12, size: 16} as const;
/** struct pvf_applied. */
export const Applied = {entry: 0, back: 4, tid: 8, seq: 16, latencyNs: 24, failedOps: 32, lastErrno: 40, movedOps: 48, size: 56} as const;
/** struct pvf_take_hdr. */
export const TakeHeader = {valid: 0, phase: 4, cursor: 8, count: 16, size: 24} as const;
/** struct pvf_stats: its fields, each a u64, in order. */
export const statFields = [
	'kicks',
	'applied',
	'noTable',
	'notCovered',
	'invalid',
	'pinErrors',
	'demotions',
	'connects',
	'wakeErrors',
	'creditWaits',
	'moved',
] as const;
/**
 * A counters struct of the library (struct pvf_stats, struct pvs_stats: u64
 * fields in the order of `names`) as numbers; all zero without a buffer (the
 * library refused, or is stopped).
 */
export function readCounters<K extends string>(names: readonly K[], buf: Buffer | undefined): Record<K, number> {
	return Object.fromEntries(names.map((k, i) => [k, buf ? Number(buf.readBigUInt64LE(i * 8)) : 0])) as Record<K, number>;
}

/** The CPU masks' words (u64 each) in a table: PVF_MAX_CPUS / 64. */
export const maskWords = tableMaxCpus / 64;
