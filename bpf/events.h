/* SPDX-License-Identifier: MIT */
/* The per-CPU ring buffers every hint program writes its records to, as the
 * guest agent expects them (guest-agent/progs.c): an ARRAY_OF_MAPS named
 * `events`, which the agent sizes to the possible CPUs and fills with one
 * ring buffer each, so that a record wakes the agent's relay thread on the
 * CPU that produced it. Included by each bpf/<type>.bpf.c (each object gets
 * maps of its own). */
#ifndef PVRUN_EVENTS_H
#define PVRUN_EVENTS_H

struct cpu_ringbuf {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cpu_ringbuf);
} events SEC(".maps");

/* This CPU's ring buffer, or NULL (then the record is dropped). */
static __always_inline void *cpu_ringbuf(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&events, &cpu);
}

#endif
