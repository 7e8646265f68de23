/* SPDX-License-Identifier: MIT */
/* pvcs: user-space critical sections that the pvrun host can see
 * (docs/critical-sections.md). Header-only; link with nothing but libc.
 *
 *   pvcs_enter(); ... pvcs_exit();       mark a section (nests)
 *   pvcs_lock(&l); ... pvcs_unlock(&l);  a spin-then-park lock whose holder is in a section
 *   pvcs_vcpu_preempted(cpu)             the host's feedback about a vCPU
 *   pvcs_pcpu_overloaded(cpu)
 *
 * Each thread that enters a section claims a cell in pvrun's shared memory on
 * its first use: one connection to the guest agent's socket per process (any
 * user may connect), then only plain stores. A thread gives its cell back when
 * it ends; the agent frees the cells of threads killed inside a section. Without pvrun (no agent, no
 * area), every call still works and writes to a cell of its own in process
 * memory, which nobody reads. */
#ifndef PVRUN_PVCS_H
#define PVRUN_PVCS_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "pvrun_shm.h"

/* Spins before a waiter parks (futex), and before it parks when its own host
 * CPU is overloaded (the holder may be waiting for the same CPU). */
#ifndef PVCS_SPINS
#define PVCS_SPINS 2000
#endif
#ifndef PVCS_SPINS_OVERLOADED
#define PVCS_SPINS_OVERLOADED 50
#endif
#ifndef PVCS_FEEDBACK_EVERY
#define PVCS_FEEDBACK_EVERY 32
#endif

/* Process-wide state, shared by every file that includes this header. */
__attribute__((weak)) volatile uint8_t *pvcs__area;   /* the mapped area, or NULL */
__attribute__((weak)) int pvcs__state;                /* 0 not tried, 1 trying, 2 done */
__attribute__((weak)) pthread_key_t pvcs__key;
__attribute__((weak)) __thread struct pvshm_cell *pvcs__cell; /* this thread's cell */
__attribute__((weak)) __thread struct pvshm_cell pvcs__private; /* the cell when there is no area */

static inline pid_t pvcs__gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* A thread that ends gives its cell back. */
static inline void pvcs__release(void *cell)
{
	struct pvshm_cell *c = (struct pvshm_cell *)cell;

	__atomic_store_n(&c->depth, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->owner_tid, 0, __ATOMIC_RELEASE);
}

/* The main thread's cell at exit (a pthread key's destructor runs only for
 * threads that end before the process does). */
static inline void pvcs__release_main(void)
{
	if (pvcs__cell && pvcs__cell != &pvcs__private)
		pvcs__release(pvcs__cell);
}

/* Connect to the agent, receive the BAR file, map it, and check the layout. */
static inline volatile uint8_t *pvcs__map(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	uint8_t version = 0;
	struct iovec io = {.iov_base = &version, .iov_len = 1};
	struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *h;
	volatile struct pvshm_header *hdr;
	void *p = MAP_FAILED;
	int s, fd = -1;

	strncpy(a.sun_path, PVCS_SOCKET, sizeof(a.sun_path) - 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return NULL;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0 && recvmsg(s, &m, MSG_CMSG_CLOEXEC) == 1) {
		h = CMSG_FIRSTHDR(&m);
		if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(h), sizeof(int));
	}
	close(s);
	if (fd < 0)
		return NULL;
	if (version == PVSHM_VERSION)
		p = mmap(NULL, PVSHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	hdr = (volatile struct pvshm_header *)p;
	if (hdr->magic != PVSHM_MAGIC || hdr->version != PVSHM_VERSION || hdr->cells_offset != PVSHM_CELLS_OFFSET ||
	    hdr->cells != PVSHM_CELLS || hdr->cell_size != PVSHM_CELL_SIZE) {
		munmap(p, PVSHM_SIZE);
		return NULL;
	}
	return (volatile uint8_t *)p;
}

/* Map the area once per process; 0, or -ENODEV when there is none (not under pvrun). */
static inline int pvcs_init(void)
{
	int expected = 0;

	if (__atomic_compare_exchange_n(&pvcs__state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		volatile uint8_t *area = pvcs__map();

		pthread_key_create(&pvcs__key, pvcs__release);
		if (area)
			atexit(pvcs__release_main);
		__atomic_store_n(&pvcs__area, area, __ATOMIC_RELEASE);
		__atomic_store_n(&pvcs__state, 2, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&pvcs__state, __ATOMIC_ACQUIRE) != 2)
		sched_yield();
	return __atomic_load_n(&pvcs__area, __ATOMIC_ACQUIRE) ? 0 : -ENODEV;
}

/* Cell i (guest-agent/shm.c has pvshm_cell for the agent; this header links only libc). */
static inline struct pvshm_cell *pvcs__cell_at(volatile uint8_t *area, unsigned i)
{
	return (struct pvshm_cell *)(area + PVSHM_CELLS_OFFSET + (size_t)i * PVSHM_CELL_SIZE);
}

/* Claim a free cell, or one whose thread is gone; NULL when all 1024 are in use. */
static inline struct pvshm_cell *pvcs__claim(volatile uint8_t *area)
{
	volatile struct pvshm_header *hdr = (volatile struct pvshm_header *)area;
	uint32_t tid = (uint32_t)pvcs__gettid(), tgid = (uint32_t)getpid();

	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < PVSHM_CELLS; i++) {
			struct pvshm_cell *c = pvcs__cell_at(area, i);
			uint32_t owner = __atomic_load_n(&c->owner_tid, __ATOMIC_ACQUIRE);

			/* Pass 0 takes free cells; pass 1 also those of threads that ended
			 * without giving theirs back (killed, or a process that exec'd). */
			if (owner != 0 && (pass == 0 || syscall(SYS_tgkill, c->owner_tgid, owner, 0) == 0 || errno != ESRCH))
				continue;
			if (!__atomic_compare_exchange_n(&c->owner_tid, &owner, tid, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
				continue;
			c->owner_tgid = tgid;
			c->depth = 0;
			c->cpu = -1;
			c->enters = c->lock_waits = c->parks = 0;
			c->waiting = 0;
			for (uint32_t used = __atomic_load_n(&hdr->cells_used, __ATOMIC_RELAXED); used < i + 1;)
				if (__atomic_compare_exchange_n(&hdr->cells_used, &used, i + 1, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
					break;
			return c;
		}
	return NULL;
}

/* This thread's cell (claimed on first use). */
static inline struct pvshm_cell *pvcs__thread_cell(void)
{
	struct pvshm_cell *c = NULL;

	if (pvcs__cell)
		return pvcs__cell;
	if (pvcs_init() == 0 && (c = pvcs__claim(pvcs__area)) != NULL)
		pthread_setspecific(pvcs__key, c);
	if (!c) {
		c = &pvcs__private;
		c->cpu = -1;
	}
	pvcs__cell = c;
	return c;
}

/* Whether this thread's sections are visible to the host (it has a cell in pvrun's area). */
static inline int pvcs_active(void)
{
	return pvcs__thread_cell() != &pvcs__private;
}

/* Enter a critical section (they nest). The outermost one records the vCPU. */
static inline void pvcs_enter(void)
{
	struct pvshm_cell *c = pvcs__cell ? pvcs__cell : pvcs__thread_cell();
	uint32_t d = c->depth;

	if (d == 0) {
		c->cpu = sched_getcpu();
		c->enters++;
	}
	/* Only this thread writes its cell; the host reads it. The store is ordered
	 * before the section's own accesses by the compiler and by x86. */
	__atomic_store_n(&c->depth, d + 1, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void pvcs_exit(void)
{
	struct pvshm_cell *c = pvcs__cell ? pvcs__cell : pvcs__thread_cell();
	uint32_t d = c->depth;

	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (d > 0)
		__atomic_store_n(&c->depth, d - 1, __ATOMIC_RELEASE);
}

/* The host's feedback flags of vCPU `cpu` (0 without pvrun or out of range). */
static inline uint32_t pvcs__flags(int cpu)
{
	volatile uint8_t *area = __atomic_load_n(&pvcs__area, __ATOMIC_ACQUIRE);
	volatile struct pvshm_vcpu_slot *s;

	if (!area || cpu < 0 || (uint32_t)cpu >= ((volatile struct pvshm_header *)area)->nr_vcpus ||
	    cpu >= PVSHM_MAX_VCPUS)
		return 0;
	s = (volatile struct pvshm_vcpu_slot *)(area + PVSHM_SLOTS_OFFSET + (size_t)cpu * PVSHM_SLOT_SIZE);
	return __atomic_load_n(&s->flags, __ATOMIC_ACQUIRE);
}

/* Whether vCPU `cpu`'s host thread is runnable but not running (the host's view). */
static inline int pvcs_vcpu_preempted(int cpu)
{
	return (pvcs__flags(cpu) & PVSHM_FLAG_VCPU_PREEMPTED) != 0;
}

/* Whether other threads wait for the host CPU that vCPU `cpu` runs on. */
static inline int pvcs_pcpu_overloaded(int cpu)
{
	return (pvcs__flags(cpu) & PVSHM_FLAG_PCPU_OVERLOADED) != 0;
}

/* A lock whose holder is inside a critical section: 0 free, 1 held, 2 held
 * with parked waiters; `cpu` is the holder's vCPU when it took the lock. */
typedef struct {
	uint32_t word;
	int32_t cpu;
} pvcs_lock_t;

#define PVCS_LOCK_INIT {0, -1}

static inline void pvcs__futex(uint32_t *word, int op, uint32_t value)
{
	syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, value, NULL, NULL, 0);
}

static inline void pvcs_lock(pvcs_lock_t *l)
{
	struct pvshm_cell *c = pvcs__cell ? pvcs__cell : pvcs__thread_cell();
	uint32_t v = 0;

	if (!__atomic_compare_exchange_n(&l->word, &v, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		int me = sched_getcpu();

		c->cpu = me;
		c->lock_waits++;
		__atomic_store_n(&c->waiting, 1, __ATOMIC_RELAXED);
		for (;;) {
			/* Spin while the holder runs; park at once when the host says its vCPU
			 * is preempted (it cannot release the lock until it runs again, and our
			 * spinning may be what keeps it off a CPU), and soon when our own host
			 * CPU is overloaded. The feedback is one load from the area; read it
			 * every PVCS_FEEDBACK_EVERY spins. */
			int spins = pvcs_pcpu_overloaded(me) ? PVCS_SPINS_OVERLOADED : PVCS_SPINS;

			for (int i = 0; i < spins && __atomic_load_n(&l->word, __ATOMIC_RELAXED) != 0; i++) {
				if (i % PVCS_FEEDBACK_EVERY == 0 && pvcs_vcpu_preempted(__atomic_load_n(&l->cpu, __ATOMIC_RELAXED)))
					break;
				__builtin_ia32_pause();
			}
			v = 0;
			if (__atomic_compare_exchange_n(&l->word, &v, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				break;
			/* Park: mark the lock contended and sleep until an unlock wakes us. */
			if (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) == 0)
				break; /* (it was free: held now, marked contended) */
			c->parks++;
			pvcs__futex(&l->word, FUTEX_WAIT, 2);
			if (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) == 0)
				break;
		}
		__atomic_store_n(&c->waiting, 0, __ATOMIC_RELAXED);
	}
	pvcs_enter();
	__atomic_store_n(&l->cpu, c->cpu, __ATOMIC_RELAXED);
}

static inline void pvcs_unlock(pvcs_lock_t *l)
{
	__atomic_store_n(&l->cpu, -1, __ATOMIC_RELAXED);
	pvcs_exit();
	if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2)
		pvcs__futex(&l->word, FUTEX_WAKE, 1);
}

#endif
