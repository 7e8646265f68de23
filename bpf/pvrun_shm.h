/* SPDX-License-Identifier: MIT */
/* The pvrun shared-memory area, layout version 1 (docs/shm-layout.md).
 * One C header for the guest agent, guest tools and BPF programs; the host's
 * TypeScript decoder (src/shm/layout.ts) mirrors it and a test checks the
 * offsets against this file. All fields little-endian, fixed width, padded
 * explicitly. The host creates and initialises the area; the guest never
 * changes the layout fields. */
#ifndef PVRUN_SHM_H
#define PVRUN_SHM_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define PVSHM_MAGIC 0x48535650u /* "PVSH" */
#define PVSHM_VERSION 1
#define PVSHM_SIZE (256 * 1024)        /* power of two (IVSHMEM BAR) */
#define PVSHM_HEADER_SIZE 4096
#define PVSHM_MAX_VCPUS 256
#define PVSHM_SLOT_SIZE 128
#define PVSHM_SLOTS_OFFSET 4096
#define PVSHM_RING_OFFSET (PVSHM_SLOTS_OFFSET + PVSHM_MAX_VCPUS * PVSHM_SLOT_SIZE) /* 36864 */
#define PVSHM_RING_ENTRIES 1024
#define PVSHM_RECORD_SIZE 128
#define PVSHM_RECORD_PAYLOAD 104

/* Feature bits (header.features): what the host will act on. */
#define PVSHM_FEAT_AFFINITY (1u << 0)

/* Record types in the ring. */
#define PVSHM_REC_AFFINITY 1 /* payload: struct pv_affinity_event (affinity.h) */

/* Host feedback states of a vCPU slot. */
#define PVSHM_VCPU_FLOATING 0
#define PVSHM_VCPU_EXCLUSIVE 1

struct pvshm_header {
	/* Written by the host once, before the guest starts; read-only for the guest. */
	__u32 magic;          /*   0 */
	__u16 version;        /*   4 */
	__u16 header_size;    /*   6 */
	__u32 size;           /*   8: whole area */
	__u32 features;       /*  12 */
	__u32 nr_vcpus;       /*  16: vCPUs of this VM (slots in use) */
	__u32 slot_size;      /*  20 */
	__u32 slots_offset;   /*  24 */
	__u32 ring_offset;    /*  28 */
	__u32 ring_entries;   /*  32 */
	__u32 record_size;    /*  36 */
	__u64 host_epoch;     /*  40: changes when a new pvrun instance initialises the area */
	__u8 _host_pad[16];   /*  48 */
	/* Written by the guest agent. */
	__u64 guest_epoch;    /*  64: changes when the agent (re)starts; 0 = no agent yet */
	__u64 ring_head;      /*  72: sequence of the next record the guest will write */
	__u64 ring_lost;      /*  80: records the guest dropped because the ring was full */
	__u32 agent_pid;      /*  88 */
	__u32 _guest_pad;     /*  92 */
	__u8 _guest_pad2[32]; /*  96 */
	/* Written by the host while running. */
	__u64 ring_tail;      /* 128: sequence of the next record the host will read */
	__u32 kick_wanted;    /* 136: 1 = host sleeps, guest should send a KICK frame */
	__u32 _run_pad;       /* 140 */
	__u64 host_heartbeat; /* 144: host CLOCK_MONOTONIC ns, refreshed every 250 ms while pvrun runs */
};                            /* 152 bytes used of PVSHM_HEADER_SIZE */

struct pvshm_vcpu_slot {
	/* Guest part: reserved for critical-section counters (layout v2); zero in v1. */
	__u8 guest[64];       /*   0 */
	/* Host feedback part: written by the host, seqlock-style: feedback_seq is
	 * odd while the host writes and even (and larger) when done. */
	__u64 feedback_seq;   /*  64 */
	__u32 state;          /*  72: PVSHM_VCPU_FLOATING / _EXCLUSIVE */
	__s32 pcpu;           /*  76: the host CPU given exclusively, -1 when floating */
	__u32 hint_tid;       /*  80: guest thread whose hint caused the state, 0 = none */
	__u32 flags;          /*  84: reserved (vcpu_preempted, pcpu_overloaded in v2) */
	__u64 applied_ns;     /*  88: host CLOCK_MONOTONIC when applied */
	__u64 record_seq;     /*  96: ring sequence of the last record of the batch that caused it (0: reset) */
	__u8 _pad[24];        /* 104 */
};                            /* 128 bytes */

struct pvshm_record {
	__u64 seq;            /*   0: ring sequence + 1, written last (0 = empty) */
	__u16 type;           /*   8: PVSHM_REC_* */
	__u16 len;            /*  10: payload bytes used (<= PVSHM_RECORD_PAYLOAD) */
	__u32 _pad;           /*  12 */
	__u64 ts_ns;          /*  16: guest CLOCK_MONOTONIC when the agent relayed it */
	__u8 payload[PVSHM_RECORD_PAYLOAD]; /* 24 */
};                            /* 128 bytes */

#endif
