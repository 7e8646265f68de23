/* SPDX-License-Identifier: MIT */
/* BPF programs the host sent: load, attach, relay their ring buffer, unload. */
#ifndef PVAGENT_PROGS_H
#define PVAGENT_PROGS_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "shm.h"

#define PVAGENT_MAX_PROGS 16

struct pvagent_stats_counters {
	uint64_t records, dropped;
};

/* Set the shared memory records go to (may be NULL: records are dropped) and
 * what relay threads call after relaying (the kick); safe from any thread. */
void progs_init(struct pvshm *shm, struct pvagent_stats_counters *counters, void (*after_relay)(void));
/* Load an ELF object; returns id > 0, or -errno with the libbpf log in `log`. */
int progs_load(const char *name, uint32_t record_type, const void *obj, size_t len, uint32_t *links, char *log,
	       size_t log_len);
int progs_unload(uint32_t id);
/* Run every loaded program's task iterators again (their records report the state now);
 * returns how many ran, or -errno with the reason in `log`. */
int progs_snapshot(char *log, size_t log_len);
/* Fill up to `max` infos; returns the number of loaded programs. */
unsigned progs_list(struct pvag_prog_info *out, unsigned max);
/* The epoll fd that becomes readable when a main-thread ring buffer has data,
 * or -1; `generation` changes whenever that fd was replaced (even by one with
 * the same number), so the caller knows to register it again. */
int progs_epoll_fd(unsigned *generation);
/* Whether a loaded program names the thread each vCPU runs (cs.bpf.c's `current` map). */
int progs_have_current(void);
/* Copy that into each vCPU slot's cur_tid (one 32-bit store each, outside guest_seq). */
void progs_publish_current(void);
/* Append one record to the shared ring, as a program's would be, and kick the host;
 * 0, or -errno (-ENODEV: no shared memory; -ENOSPC: the ring is full). */
int progs_append(uint16_t type, const void *payload, uint16_t len);
/* Relay everything waiting; returns records relayed. */
int progs_drain(void);

#endif
