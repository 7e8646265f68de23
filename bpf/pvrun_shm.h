/* SPDX-License-Identifier: MIT */
/* The pvrun shared-memory area, layout version 2 (docs/shm-layout.md).
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
#define PVSHM_VERSION 2
#define PVSHM_SIZE (256 * 1024)        /* power of two (IVSHMEM BAR) */
#define PVSHM_HEADER_SIZE 4096
#define PVSHM_MAX_VCPUS 256
#define PVSHM_SLOT_SIZE 128
#define PVSHM_SLOTS_OFFSET 4096
#define PVSHM_RING_OFFSET (PVSHM_SLOTS_OFFSET + PVSHM_MAX_VCPUS * PVSHM_SLOT_SIZE) /* 36864 */
#define PVSHM_RING_ENTRIES 1024
#define PVSHM_RECORD_SIZE 128
#define PVSHM_RECORD_PAYLOAD 104
/* Critical-section cells (v2): one per guest thread that uses the pvcs library. */
#define PVSHM_CELLS_OFFSET (PVSHM_RING_OFFSET + PVSHM_RING_ENTRIES * PVSHM_RECORD_SIZE) /* 167936 */
#define PVSHM_CELLS 1024
#define PVSHM_CELL_SIZE 64

/* Feature bits (header.features: what the host will act on; header.agent_features:
 * what the guest agent has attached). Record type t's feature bit is 1 << (t - 1). */
#define PVSHM_FEAT_AFFINITY (1u << 0)
#define PVSHM_FEAT_CS (1u << 1) /* critical sections: cells and slots' guest parts read, flags written */

/* Record types in the ring. */
#define PVSHM_REC_AFFINITY 1 /* payload: struct pv_affinity_event (affinity.h) */
#define PVSHM_REC_CS 2       /* struct pv_cs_event (cs.h): the agent applies it to the slot; never in the ring */

/* Where a guest process gets the area for its critical-section cells: the
 * guest agent hands the BAR file's descriptor to whoever connects here. */
#define PVCS_SOCKET_DIR "/run/pvrun"
#define PVCS_SOCKET PVCS_SOCKET_DIR "/pvcs.sock"

/* Host feedback states of a vCPU slot. */
#define PVSHM_VCPU_FLOATING 0
#define PVSHM_VCPU_EXCLUSIVE 1

/* Host feedback flags of a vCPU slot (slot.flags, v2). */
#define PVSHM_FLAG_VCPU_PREEMPTED (1u << 0)  /* the vCPU's thread is runnable on the host but not running */
#define PVSHM_FLAG_PCPU_OVERLOADED (1u << 1) /* other threads wait for the host CPU(s) the vCPU runs on */
#define PVSHM_FLAG_BOOSTED (1u << 2)         /* the host boosts the vCPU now (critical sections, part 2) */

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
	__u32 cells_offset;   /*  48: PVSHM_CELLS_OFFSET */
	__u32 cells;          /*  52: PVSHM_CELLS */
	__u32 cell_size;      /*  56: PVSHM_CELL_SIZE */
	__u32 _host_pad;      /*  60 */
	/* Written by the guest agent. */
	__u64 guest_epoch;    /*  64: changes when the agent (re)starts; 0 = no agent yet */
	__u64 ring_head;      /*  72: sequence of the next record the guest will write */
	__u64 ring_lost;      /*  80: records the guest dropped because the ring was full */
	__u32 agent_pid;      /*  88 */
	__u32 agent_features; /*  92: PVSHM_FEAT_* whose guest side is active (programs attached) */
	__u32 cells_used;     /*  96: cells ever claimed: the highest claimed index + 1 (pvcs library) */
	__u32 _guest_pad;     /* 100 */
	__u8 _guest_pad2[24]; /* 104 */
	/* Written by the host while running. */
	__u64 ring_tail;      /* 128: sequence of the next record the host will read */
	__u32 kick_wanted;    /* 136: 1 = host sleeps, guest should send a KICK frame */
	__u32 _run_pad;       /* 140 */
	__u64 host_heartbeat; /* 144: host CLOCK_MONOTONIC ns, refreshed every 250 ms while pvrun runs */
};                            /* 152 bytes used of PVSHM_HEADER_SIZE */

struct pvshm_vcpu_slot {
	/* Guest part, written by the guest agent from what its BPF programs see in the
	 * guest kernel; seqlock-style: guest_seq is odd while the agent writes. */
	__u32 guest_seq;      /*   0 */
	__u32 cur_tid;        /*   4: guest thread the vCPU runs (sched_switch; copied every 10 ms in a section, else 1 s; one store, outside guest_seq), 0 = idle/unknown */
	__u32 klock_waiting;  /*   8: 1 while a kernel lock wait is in progress on this vCPU */
	__u32 klock_owner_tid; /* 12: the lock's owner when the kernel knows it (mutex, rwsem), 0 = unknown */
	__u64 klock_since_ns; /*  16: guest CLOCK_MONOTONIC when the wait in progress began */
	__u64 klock_addr;     /*  24: the lock waited for (guest kernel address) */
	__u64 klock_waits;    /*  32: kernel lock waits ended on this vCPU */
	__u64 klock_wait_ns;  /*  40: their total time */
	__s32 klock_owner_cpu; /* 48: the owner's vCPU when known, -1 = unknown */
	__u32 _guest_pad;     /*  52 */
	__u64 guest_ts_ns;    /*  56: guest CLOCK_MONOTONIC of the last update */
	/* Host feedback part: written by the host, seqlock-style: feedback_seq is
	 * odd while the host writes and even (and larger) when done. */
	__u64 feedback_seq;   /*  64 */
	__u32 state;          /*  72: PVSHM_VCPU_FLOATING / _EXCLUSIVE */
	__s32 pcpu;           /*  76: the host CPU given exclusively, -1 when floating */
	__u32 hint_tid;       /*  80: guest thread whose hint caused the state, 0 = none */
	__u32 flags;          /*  84: PVSHM_FLAG_*; stored on its own (atomically), outside feedback_seq */
	__u64 applied_ns;     /*  88: host CLOCK_MONOTONIC when applied */
	__u64 record_seq;     /*  96: ring sequence of the last record of the batch that caused it (0: reset) */
	__u32 budget_left_us; /* 104: boost time left in the current window (critical sections, part 2); 0 = none */
	__u32 boosts;         /* 108: boosts given so far */
	__u64 preempted_ns;   /* 112: host: time the vCPU's thread was runnable but not running, in all */
	__u64 flags_ns;       /* 120: host CLOCK_MONOTONIC when flags and preempted_ns were refreshed */
};                            /* 128 bytes */

/* A thread's critical-section cell (v2), at PVSHM_CELLS_OFFSET + i * PVSHM_CELL_SIZE.
 * Claimed by a guest thread through the pvcs library (owner_tid 0 -> tid with a
 * compare-and-swap) and written only by that thread; read by the host. */
struct pvshm_cell {
	__u32 owner_tid;      /*   0: guest thread that owns the cell, 0 = free */
	__u32 owner_tgid;     /*   4: its process */
	__u32 depth;          /*   8: critical-section nesting depth; > 0 inside a section */
	__s32 cpu;            /*  12: vCPU where the thread was when it last entered or waited, -1 = unknown */
	__u64 enters;         /*  16: outermost sections entered */
	__u64 lock_waits;     /*  24: pvcs lock acquisitions that had to wait */
	__u64 parks;          /*  32: waits that parked (futex) instead of spinning on */
	__u32 waiting;        /*  40: 1 while the thread waits for a pvcs lock */
	__u32 _pad;           /*  44 */
	__u8 _reserved[16];   /*  48 */
};                            /* 64 bytes */

struct pvshm_record {
	__u64 seq;            /*   0: ring sequence + 1, written last (0 = empty) */
	__u16 type;           /*   8: PVSHM_REC_* */
	__u16 len;            /*  10: payload bytes used (<= PVSHM_RECORD_PAYLOAD) */
	__u32 _pad;           /*  12 */
	__u64 ts_ns;          /*  16: guest CLOCK_MONOTONIC when the agent relayed it */
	__u8 payload[PVSHM_RECORD_PAYLOAD]; /* 24 */
};                            /* 128 bytes */

#endif
