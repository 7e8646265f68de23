/* SPDX-License-Identifier: MIT */
/* Guest side of the shared-memory area: find the IVSHMEM device, map its
 * BAR2, validate the host's header, append records, read vCPU feedback. */
#ifndef PVAGENT_SHM_H
#define PVAGENT_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "pvrun_shm.h"

struct pvshm {
	volatile uint8_t *base;
	size_t size;
	volatile struct pvshm_header *hdr;
	int fd; /* the BAR file, open while mapped (-1 otherwise) */
};

/* Map the area (enabling the PCI device first). 0 or -errno; `why` gets a reason. */
int pvshm_open(struct pvshm *shm, char *why, size_t why_len);
void pvshm_close(struct pvshm *shm);
/* Append one record; 0, or -ENOSPC when the ring is full (counted as lost). */
int pvshm_append(struct pvshm *shm, uint16_t type, const void *payload, uint16_t len, uint64_t ts_ns);
/* Count `n` records lost before they reached the ring (a program's own count, pv_lost). */
void pvshm_count_lost(struct pvshm *shm, uint64_t n);
/* The feedback slot of a vCPU, or NULL when out of range. */
volatile struct pvshm_vcpu_slot *pvshm_slot(struct pvshm *shm, unsigned vcpu);
/* Critical-section cell i, or NULL when out of range. */
volatile struct pvshm_cell *pvshm_cell(struct pvshm *shm, unsigned i);
/* CLOCK_MONOTONIC in ns. */
uint64_t pvshm_now_ns(void);

#endif
