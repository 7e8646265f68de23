// SPDX-License-Identifier: MIT
// pvhint: the guest's view of the hint round trip. `pvhint wait VCPU` pins the
// calling thread to VCPU alone and waits until the host's feedback in the
// shared-memory slot of that vCPU says it applied the hint for this thread;
// then unpins and waits until the host says the vCPU floats again. Times are
// the guest's CLOCK_MONOTONIC. Prints one machine-readable result line.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "proto.h"
#include "pvcs.h"
#include "shm.h"
#include "sysfs.h"

struct feedback {
	uint64_t seq, record_seq;
	uint32_t state, hint_tid;
	int32_t pcpu;
};

/* Where the time of one hint went, from the ring record the host acted on (guest clock). */
struct breakdown {
	double syscall_us; /* sched_setaffinity called → BPF program saw the change (guest migration) */
	double relay_us;   /* BPF → agent copied the record into the ring */
	double host_us;    /* record in the ring → this thread saw the host's feedback */
};

static struct breakdown explain(struct pvshm *shm, uint64_t record_seq, uint64_t t0, uint64_t t_seen)
{
	volatile struct pvshm_record *r = (volatile struct pvshm_record *)(shm->base + PVSHM_RING_OFFSET +
									(record_seq % PVSHM_RING_ENTRIES) *
									    PVSHM_RECORD_SIZE);
	struct breakdown b = {-1, -1, -1};
	uint64_t bpf_ts, relay_ts;

	if (r->seq != record_seq + 1 || r->len < sizeof(struct pv_affinity_event))
		return b;
	bpf_ts = ((volatile struct pv_affinity_event *)r->payload)->ts_ns;
	relay_ts = r->ts_ns;
	if (bpf_ts < t0 || relay_ts < bpf_ts || t_seen < relay_ts)
		return b;
	b.syscall_us = (double)(bpf_ts - t0) / 1000.0;
	b.relay_us = (double)(relay_ts - bpf_ts) / 1000.0;
	b.host_us = (double)(t_seen - relay_ts) / 1000.0;
	return b;
}

/* A consistent copy of a slot's host part (seqlock read). */
static struct feedback read_feedback(volatile struct pvshm_vcpu_slot *s)
{
	struct feedback f;

	for (;;) {
		uint64_t a = __atomic_load_n(&s->feedback_seq, __ATOMIC_ACQUIRE);

		f.state = s->state;
		f.hint_tid = s->hint_tid;
		f.pcpu = s->pcpu;
		f.record_seq = s->record_seq;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(a & 1) && a == __atomic_load_n(&s->feedback_seq, __ATOMIC_ACQUIRE)) {
			f.seq = a;
			return f;
		}
	}
}

/* Spin until the slot reports `state` for `tid` (tid 0: any) after `since`; 0 or -ETIMEDOUT. */
static int wait_state(volatile struct pvshm_vcpu_slot *s, uint64_t since, uint32_t state, uint32_t tid,
		      uint64_t deadline)
{
	for (;;) {
		struct feedback f = read_feedback(s);

		if (f.seq != since && f.state == state && (!tid || f.hint_tid == tid))
			return 0;
		if (pvshm_now_ns() > deadline)
			return -ETIMEDOUT;
		__builtin_ia32_pause();
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, unsigned n, double p)
{
	unsigned i;

	if (!n)
		return 0;
	i = (unsigned)(p * (n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static int usage(void)
{
	fprintf(stderr, "usage: pvhint wait VCPU [-n COUNT] [-w WARMUP] [-t TIMEOUT_MS] [-p PAUSE_US] [-v]\n"
			"       pvhint feedback (each vCPU's feedback from the host; any user)\n"
			"       pvhint live TIMEOUT_MS (wait until the agent has attached the programs of every feature\n"
			"              the host acts on: exit 0, also at the timeout with some attached; 1 at the timeout\n"
			"              with none; 3 at once without pvrun's shared memory)\n"
			"       pvhint attack   (test only: act as a hostile guest on the shared memory)\n"
			"       pvhint attack-cs (test only: the same, on the critical-section parts)\n"
			"       pvhint flood-frames SECONDS (test only: KICK and malformed frames into the agent's port, the agent stopped)\n"
			"       pvhint flood-pins SECONDS flap|wide (test only: this thread pins itself to vCPU 1 and lets go,\n"
			"              or sets masks of two vCPUs or more, as fast as it can, without waiting for the host)\n");
	return 2;
}

/* Each vCPU's slot as the host last wrote it, one line each; through the
 * pvcs library's way in (the agent's socket), so that any user may ask. */
static int feedback(void)
{
	volatile struct pvshm_header *h;
	uint32_t n;

	if (pvcs_init()) {
		fprintf(stderr, "pvhint: no pvrun shared memory (is the agent running? %s)\n", PVCS_SOCKET);
		return 1;
	}
	h = (volatile struct pvshm_header *)pvcs__area;
	n = h->nr_vcpus < PVSHM_MAX_VCPUS ? h->nr_vcpus : PVSHM_MAX_VCPUS;
	printf("pvhint: features host=0x%x agent=0x%x\n", h->features, h->agent_features);
	for (uint32_t v = 0; v < n; v++) {
		volatile struct pvshm_vcpu_slot *s = (volatile struct pvshm_vcpu_slot *)(pvcs__area + PVSHM_SLOTS_OFFSET +
											   v * PVSHM_SLOT_SIZE);
		uint32_t flags = __atomic_load_n(&s->flags, __ATOMIC_ACQUIRE);

		printf("vcpu=%u state=%s pcpu=%d preempted=%d overloaded=%d boosted=%d preempted_ms=%llu\n", v,
		       s->state == PVSHM_VCPU_EXCLUSIVE ? "exclusive" : "floating", s->pcpu,
		       !!(flags & PVSHM_FLAG_VCPU_PREEMPTED), !!(flags & PVSHM_FLAG_PCPU_OVERLOADED),
		       !!(flags & PVSHM_FLAG_BOOSTED), (unsigned long long)(s->preempted_ns / 1000000));
	}
	return 0;
}

/* Wait until the agent reports attached the programs of every feature the host acts on (the
 * header's agent_features against its features), so that a workload that needs hints from its
 * first second runs after all of them; a host that names none: any program. Exit 3 at once
 * where there is no pvrun shared memory (plain QEMU), so the same command line runs in every
 * configuration. At the deadline, with some attached: go on (exit 0), naming what is missing. */
static int live(unsigned timeout_ms)
{
	uint64_t t0 = pvshm_now_ns(), deadline = t0 + (uint64_t)timeout_ms * 1000000ull;
	struct pvshm shm;
	char why[256];
	uint32_t want, got;

	if (pvshm_open(&shm, why, sizeof(why))) {
		printf("pvhint: no hints here (%s)\n", why);
		return 3;
	}
	for (;;) {
		want = __atomic_load_n(&shm.hdr->features, __ATOMIC_ACQUIRE);
		got = __atomic_load_n(&shm.hdr->agent_features, __ATOMIC_ACQUIRE);
		if (got && (got & want) == want)
			break;
		if (pvshm_now_ns() > deadline) {
			pvshm_close(&shm);
			if (!got) {
				printf("pvhint: no hint program attached after %u ms\n", timeout_ms);
				return 1;
			}
			printf("pvhint: hints live after %u ms without features 0x%x\n", timeout_ms, want & ~got);
			return 0;
		}
		usleep(10000);
	}
	printf("pvhint: hints live after %llu ms\n", (unsigned long long)((pvshm_now_ns() - t0) / 1000000));
	pvshm_close(&shm);
	return 0;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Write one record as the agent would, with whatever fields the attacker likes. */
static void forge(struct pvshm *shm, uint64_t seq, uint64_t seq_field, uint16_t type, uint16_t len,
		  const struct pv_affinity_event *e)
{
	volatile struct pvshm_record *r = (volatile struct pvshm_record *)(shm->base + PVSHM_RING_OFFSET +
									(seq % PVSHM_RING_ENTRIES) * PVSHM_RECORD_SIZE);
	r->type = type;
	r->len = len;
	memcpy((void *)r->payload, e, sizeof(*e));
	__atomic_store_n(&r->seq, seq_field, __ATOMIC_RELEASE);
}

/*
 * A hostile guest, for the host's robustness tests: scribbles on the header,
 * forges invalid records and masks, floods the ring, then leaves the ring
 * head at a sane place so that honest hints can work again.
 */
static int attack(struct pvshm *shm)
{
	volatile struct pvshm_header *h = shm->hdr;
	struct pv_affinity_event e;
	uint64_t head = h->ring_head, i;

	/* 1. Host-owned header fields and the guest's own ones, garbled. */
	h->magic = 0xdeadbeef;
	h->version = 99;
	h->nr_vcpus = 4096;
	h->ring_lost = ~0ull;
	h->guest_epoch = next_rand();
	usleep(300 * 1000);
	/* 2. Invalid records: wrong sequence, oversize, unknown type, bad tids and kinds. */
	for (i = 0; i < 4000; i++, head++) {
		memset(&e, 0, sizeof(e));
		e.kind = (i % 5 == 0) ? 7 : PV_AFFINITY_SET;
		e.tid = (i % 3 == 0) ? 0 : (uint32_t)next_rand();
		e.tgid = (uint32_t)next_rand();
		e.mask[0] = next_rand();
		e.mask[1] = next_rand();
		memset(e.comm, 0x1b, sizeof(e.comm));
		forge(shm, head, (i % 2) ? head + 1 : next_rand(), (uint16_t)(i % 4), (uint16_t)(next_rand() % 400),
		      &e);
	}
	__atomic_store_n(&h->ring_head, head, __ATOMIC_RELEASE);
	usleep(300 * 1000);
	/* 3. Well-formed records whose masks name only vCPUs that do not exist. */
	for (i = 0; i < 500; i++, head++) {
		memset(&e, 0, sizeof(e));
		e.kind = PV_AFFINITY_SET;
		e.tid = 1000 + (uint32_t)i;
		e.tgid = 1000;
		e.mask[1] = 1ull << (i % 64);
		e.mask[3] = ~0ull;
		forge(shm, head, head + 1, PVSHM_REC_AFFINITY, sizeof(e), &e);
	}
	__atomic_store_n(&h->ring_head, head, __ATOMIC_RELEASE);
	/* The host reads them before the flood overwrites them: it polls every 250 ms, later on a
	 * loaded host (it writes ring_tail as it reads; 5 s at most). */
	for (i = 0; i < 5000 && __atomic_load_n(&h->ring_tail, __ATOMIC_ACQUIRE) < head; i++)
		usleep(1000);
	usleep(300 * 1000);
	/* 4. A flood: the head runs far ahead of what the ring holds. */
	for (i = 0; i < 200000; i++, head++) {
		memset(&e, 0, sizeof(e));
		e.kind = PV_AFFINITY_SET;
		e.tid = 2000 + (uint32_t)(i % 50000);
		e.tgid = 2000;
		e.mask[0] = 3; /* both vCPUs: no exclusivity asked */
		forge(shm, head, head + 1, PVSHM_REC_AFFINITY, sizeof(e), &e);
		if (i % 1000 == 0)
			__atomic_store_n(&h->ring_head, head + 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&h->ring_head, head, __ATOMIC_RELEASE);
	usleep(300 * 1000);
	/* 5. A head past 2^52, then back to a sane place for honest hints. */
	__atomic_store_n(&h->ring_head, 1ull << 60, __ATOMIC_RELEASE);
	usleep(300 * 1000);
	__atomic_store_n(&h->ring_head, head, __ATOMIC_RELEASE);
	usleep(300 * 1000);
	printf("pvhint: attack done\n");
	return 0;
}

/*
 * A hostile guest, for the host's robustness tests: with the agent stopped, write frames
 * into the agent's port as fast as the port takes them, for `seconds`: mostly well-formed
 * KICK frames, and among them headers announcing more than the largest payload, frames of
 * an unknown type and random bytes. Last, a frame that announces the largest payload and
 * stops after 1000 bytes of it, and the port is closed: the next agent's HELLO must still
 * be answered. Prints what went out.
 */
static int flood_frames(unsigned seconds)
{
	static struct pvag_frame frames[4096];
	static char partial[sizeof(struct pvag_frame) + 1000];
	char path[300];
	uint64_t sent = 0;
	time_t end = time(NULL) + seconds;
	int fd;

	if (virtio_port_path(PVAG_PORT_NAME, path, sizeof(path)) || (fd = open(path, O_WRONLY)) < 0) {
		fprintf(stderr, "pvhint: cannot open the agent's port (is the agent stopped?)\n");
		return 1;
	}
	srand((unsigned)time(NULL));
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		frames[i] = (struct pvag_frame){.magic = PVAG_MAGIC, .version = PVAG_VERSION, .type = PVAG_KICK};
		if (i % 16 == 5) /* oversized: the host skips the header byte by byte */
			frames[i].len = PVAG_MAX_PAYLOAD + 1 + (uint32_t)rand();
		else if (i % 16 == 9) /* an unknown type, no payload */
			frames[i].type = 0x7777;
		else if (i % 16 == 13) /* random bytes in a frame's place */
			for (size_t b = 0; b < sizeof(frames[i]); b++)
				((unsigned char *)&frames[i])[b] = (unsigned char)rand();
	}
	printf("pvhint: flooding %s with KICK frames and malformed ones\n", path);
	fflush(stdout);
	while (time(NULL) < end) {
		ssize_t n = write(fd, frames, sizeof(frames));

		if (n < 0 && errno != EINTR)
			break;
		if (n > 0)
			sent += (uint64_t)n / sizeof(frames[0]);
	}
	*(struct pvag_frame *)partial = (struct pvag_frame){.magic = PVAG_MAGIC, .version = PVAG_VERSION, .type = PVAG_LOAD, .id = 1, .len = PVAG_MAX_PAYLOAD};
	if (write(fd, partial, sizeof(partial)) != (ssize_t)sizeof(partial))
		perror("pvhint: the truncated frame");
	close(fd);
	printf("pvhint: flood done, %llu frames (3 in 16 malformed), then a truncated one\n", (unsigned long long)sent);
	return 0;
}

/* A thread that changes its affinity as fast as the guest lets it: `flap` pins it to vCPU 1
 * and back to every vCPU (each a decision for the host), `wide` alternates two masks of two
 * vCPUs or more (records that change nothing). */
static int flood_pins(unsigned seconds, const char *how)
{
	int flap = strcmp(how, "flap") == 0, ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	time_t end = time(NULL) + seconds;
	cpu_set_t a, b;
	uint64_t calls = 0;

	if ((!flap && strcmp(how, "wide") != 0) || ncpu < 2) {
		fprintf(stderr, "pvhint: flood-pins needs flap or wide, and 2 vCPUs or more\n");
		return 2;
	}
	CPU_ZERO(&a);
	CPU_ZERO(&b);
	for (int c = 0; c < ncpu; c++)
		CPU_SET(c, &b);
	if (flap)
		CPU_SET(1, &a);
	else {
		CPU_SET(0, &a);
		CPU_SET(1, &a);
		CPU_SET(ncpu, &b); /* beyond the online vCPUs: the kernel keeps the same mask, the program reports it */
	}
	printf("pvhint: flood-pins %s\n", how);
	fflush(stdout);
	while (time(NULL) < end) {
		for (int i = 0; i < 256; i++, calls++)
			if (sched_setaffinity(0, sizeof(cpu_set_t), (calls & 1) ? &b : &a) != 0) {
				perror("pvhint: sched_setaffinity");
				return 1;
			}
	}
	printf("pvhint: flood done, %llu calls\n", (unsigned long long)calls);
	return 0;
}

/*
 * The critical-section parts, garbled for the host's robustness tests: cells
 * with impossible owners and vCPUs, slots' guest parts naming owners on vCPUs
 * the VM lacks, counters at their limit, the host's flags word. Held for 1 s,
 * then cleared (a real agent's slot writes go on meanwhile).
 */
static int attack_cs(struct pvshm *shm)
{
	volatile struct pvshm_header *h = shm->hdr;

	for (unsigned i = 0; i < 8; i++) {
		volatile struct pvshm_cell *c = pvshm_cell(shm, PVSHM_CELLS - 1 - i);
		c->owner_tid = (i % 2) ? 0xffffffffu : 1u << 22;
		c->depth = 0xffffffffu;
		c->cpu = (int32_t)(next_rand() | 0x100);
		c->waiting = 1;
		c->enters = ~0ull;
	}
	/* Two cells with a plausible owner but a vCPU out of range, and one in range but a huge depth. */
	for (unsigned i = 8; i < 11; i++) {
		volatile struct pvshm_cell *c = pvshm_cell(shm, PVSHM_CELLS - 1 - i);
		c->owner_tid = 4000000 + i;
		c->owner_tgid = 4000000;
		c->depth = i == 10 ? 0x7fffffffu : 1;
		c->cpu = i == 10 ? 0 : -7;
	}
	h->cells_used = 0xffffffffu;
	for (unsigned v = 0; v < 2; v++) {
		volatile struct pvshm_vcpu_slot *s = pvshm_slot(shm, v);

		s->klock_waiting = 1;
		s->klock_owner_cpu = 1000 + (int32_t)v;
		s->klock_waits = ~0ull;
		s->flags = 0xffffffffu;
	}
	usleep(1000 * 1000);
	for (unsigned i = 0; i < 11; i++) {
		volatile struct pvshm_cell *c = pvshm_cell(shm, PVSHM_CELLS - 1 - i);
		memset((void *)c, 0, sizeof(*c));
	}
	for (unsigned v = 0; v < 2; v++) {
		volatile struct pvshm_vcpu_slot *s = pvshm_slot(shm, v);

		s->klock_waiting = 0;
		s->klock_owner_cpu = -1;
	}
	printf("pvhint: attack-cs done\n");
	return 0;
}

int main(int argc, char **argv)
{
	unsigned vcpu, count = 1, warmup = 0, timeout_ms = 2000, pause_us = 0, i, ok = 0, timeouts = 0, verbose = 0;
	/* -v's lines, printed after the last hint: a line written to the serial console
	 * between hints took the guest ~1 ms of port I/O and interrupts under TCG, and
	 * delayed the next hint (pin p99 2.2 against 1.0 ms, back to back, alternating runs). */
	struct breakdown *parts;
	volatile struct pvshm_vcpu_slot *slot;
	uint64_t *pin, *unpin;
	cpu_set_t one, all;
	struct pvshm shm;
	char why[256];
	int opt, ncpu;
	uint32_t tid;

	if (argc == 2 && strcmp(argv[1], "feedback") == 0)
		return feedback();
	if (argc == 2 && strcmp(argv[1], "attack-cs") == 0) {
		if (pvshm_open(&shm, why, sizeof(why))) {
			fprintf(stderr, "pvhint: %s\n", why);
			return 1;
		}
		return attack_cs(&shm);
	}
	if (argc == 2 && strcmp(argv[1], "attack") == 0) {
		if (pvshm_open(&shm, why, sizeof(why))) {
			fprintf(stderr, "pvhint: %s\n", why);
			return 1;
		}
		return attack(&shm);
	}
	if (argc == 3 && strcmp(argv[1], "live") == 0)
		return live((unsigned)strtoul(argv[2], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "flood-frames") == 0)
		return flood_frames((unsigned)strtoul(argv[2], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "flood-pins") == 0)
		return flood_pins((unsigned)strtoul(argv[2], NULL, 10), argv[3]);
	if (argc < 3 || strcmp(argv[1], "wait") != 0)
		return usage();
	vcpu = (unsigned)strtoul(argv[2], NULL, 10);
	optind = 3;
	while ((opt = getopt(argc, argv, "n:w:t:p:v")) != -1) {
		if (opt == 'n')
			count = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'w')
			warmup = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 't')
			timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'p')
			pause_us = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'v')
			verbose = 1;
		else
			return usage();
	}
	ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (count == 0 || count > 100000 || warmup > 100000 || pause_us > 10000000 || (int)vcpu >= ncpu) {
		fprintf(stderr, "pvhint: need 1..100000 hints, a pause of at most 10 s and a vCPU below %d\n", ncpu);
		return 2;
	}
	if (pvshm_open(&shm, why, sizeof(why))) {
		fprintf(stderr, "pvhint: %s\n", why);
		return 1;
	}
	slot = pvshm_slot(&shm, vcpu);
	pin = calloc(warmup + count, sizeof(*pin));
	unpin = calloc(warmup + count, sizeof(*unpin));
	parts = calloc(warmup + count, sizeof(*parts));
	if (!pin || !unpin || !parts)
		return 1;
	tid = (uint32_t)gettid();
	CPU_ZERO(&one);
	CPU_SET(vcpu, &one);
	CPU_ZERO(&all);
	for (int c = 0; c < ncpu; c++)
		CPU_SET(c, &all);
	for (i = 0; i < warmup + count; i++) {
		uint64_t t0, since = read_feedback(slot).seq;

		if (pause_us && i > 0) /* paced: each round starts from a quiet host, as a sparse real hint would */
			usleep(pause_us);
		if (i == warmup) { /* warm-up rounds are not recorded */
			ok = 0;
			timeouts = 0;
		}

		t0 = pvshm_now_ns();
		if (sched_setaffinity(0, sizeof(one), &one)) {
			perror("pvhint: sched_setaffinity");
			return 1;
		}
		if (wait_state(slot, since, PVSHM_VCPU_EXCLUSIVE, tid, t0 + timeout_ms * 1000000ull)) {
			timeouts++;
		} else {
			uint64_t seen = pvshm_now_ns();
			struct breakdown b = explain(&shm, read_feedback(slot).record_seq, t0, seen);

			pin[ok] = seen - t0;
			since = read_feedback(slot).seq;
			t0 = pvshm_now_ns();
			sched_setaffinity(0, sizeof(all), &all);
			if (wait_state(slot, since, PVSHM_VCPU_FLOATING, 0, t0 + timeout_ms * 1000000ull)) {
				timeouts++;
				continue;
			}
			unpin[ok] = pvshm_now_ns() - t0;
			parts[ok] = b;
			ok++;
			continue;
		}
		sched_setaffinity(0, sizeof(all), &all);
	}
	for (unsigned k = 0; verbose && k < ok; k++) /* before the sort below reorders pin and unpin */
		printf("pvhint-sample: pin_us=%.1f unpin_us=%.1f syscall_us=%.1f relay_us=%.1f host_us=%.1f\n", pin[k] / 1000.0, unpin[k] / 1000.0,
		       parts[k].syscall_us, parts[k].relay_us, parts[k].host_us);
	qsort(pin, ok, sizeof(*pin), cmp_u64);
	qsort(unpin, ok, sizeof(*unpin), cmp_u64);
	printf("pvhint: vcpu=%u n=%u timeouts=%u pin_p50_us=%.1f pin_p90_us=%.1f pin_p99_us=%.1f pin_max_us=%.1f "
	       "unpin_p50_us=%.1f unpin_p99_us=%.1f\n",
	       vcpu, ok, timeouts, pct_us(pin, ok, 0.5), pct_us(pin, ok, 0.9), pct_us(pin, ok, 0.99),
	       pct_us(pin, ok, 1.0), pct_us(unpin, ok, 0.5), pct_us(unpin, ok, 0.99));
	return timeouts ? 3 : 0;
}
