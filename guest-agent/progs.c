// SPDX-License-Identifier: MIT
// BPF programs sent by the host: each is a CO-RE object whose ring-buffer map
// ("events") carries records that the agent copies into the shared ring,
// tagged with the record type the host chose when loading it.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "progs.h"

struct prog {
	uint32_t id;
	uint32_t record_type;
	char name[PVAG_NAME_LEN];
	struct bpf_object *obj;
	struct bpf_link *links[16];
	unsigned nr_links;
	uint64_t records;
	int ringbuf_fd;
};

static struct prog progs[PVAGENT_MAX_PROGS];
static uint32_t next_id = 1;
static struct ring_buffer *rb;
static struct pvshm *out_shm;
static struct pvagent_stats_counters *counters;

/* libbpf's messages for the current load go here, so errors carry the verifier log. */
static char *log_buf;
static size_t log_len, log_cap;

static int log_to_buf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int n;

	if (level == LIBBPF_DEBUG || !log_buf || log_len + 1 >= log_cap)
		return 0;
	n = vsnprintf(log_buf + log_len, log_cap - log_len, fmt, ap);
	if (n > 0)
		log_len += (size_t)n < log_cap - log_len ? (size_t)n : log_cap - log_len - 1;
	return n;
}

void progs_init(struct pvshm *shm, struct pvagent_stats_counters *c)
{
	out_shm = shm;
	counters = c;
	libbpf_set_print(log_to_buf);
}

/* Ring-buffer callback: one BPF record → one shared-ring record. */
static int relay(void *ctx, void *data, size_t size)
{
	struct prog *p = ctx;

	if (!out_shm || !out_shm->base || size > PVSHM_RECORD_PAYLOAD ||
	    pvshm_append(out_shm, (uint16_t)p->record_type, data, (uint16_t)size, pvshm_now_ns())) {
		counters->dropped++;
		return 0;
	}
	p->records++;
	counters->records++;
	return 0;
}

/* Rebuild the ring-buffer manager over every loaded program (libbpf 1.1 cannot remove one). */
static int rebuild_rb(void)
{
	int i, err;

	ring_buffer__free(rb);
	rb = NULL;
	for (i = 0; i < PVAGENT_MAX_PROGS; i++) {
		if (!progs[i].id || progs[i].ringbuf_fd < 0)
			continue;
		if (!rb) {
			rb = ring_buffer__new(progs[i].ringbuf_fd, relay, &progs[i], NULL);
			if (!rb)
				return -errno;
		} else if ((err = ring_buffer__add(rb, progs[i].ringbuf_fd, relay, &progs[i]))) {
			return err;
		}
	}
	return 0;
}

static void destroy(struct prog *p)
{
	unsigned i;

	for (i = 0; i < p->nr_links; i++)
		bpf_link__destroy(p->links[i]);
	bpf_object__close(p->obj);
	memset(p, 0, sizeof(*p));
	p->ringbuf_fd = -1;
}

int progs_load(const char *name, uint32_t record_type, const void *obj, size_t len, uint32_t *links, char *log,
	       size_t cap)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	struct bpf_program *bp;
	struct bpf_map *map;
	struct prog *p = NULL;
	int i, err;

	log_buf = log;
	log_len = 0;
	log_cap = cap;
	log[0] = '\0';
	for (i = 0; i < PVAGENT_MAX_PROGS; i++)
		if (!progs[i].id) {
			p = &progs[i];
			break;
		}
	if (!p) {
		snprintf(log, cap, "too many programs loaded (%d)", PVAGENT_MAX_PROGS);
		err = -ENOSPC;
		goto out;
	}
	memset(p, 0, sizeof(*p));
	p->ringbuf_fd = -1;
	p->obj = bpf_object__open_mem(obj, len, &opts);
	if (!p->obj) {
		err = -errno;
		p->obj = NULL;
		goto cleanup;
	}
	err = bpf_object__load(p->obj);
	if (err)
		goto cleanup;
	bpf_object__for_each_program(bp, p->obj) {
		struct bpf_link *l;

		if (p->nr_links >= sizeof(p->links) / sizeof(p->links[0])) {
			err = -E2BIG;
			goto cleanup;
		}
		l = bpf_program__attach(bp);
		if (!l) {
			err = -errno;
			goto cleanup;
		}
		p->links[p->nr_links++] = l;
	}
	bpf_object__for_each_map(map, p->obj) {
		if (bpf_map__type(map) == BPF_MAP_TYPE_RINGBUF) {
			p->ringbuf_fd = bpf_map__fd(map);
			break;
		}
	}
	p->id = next_id++;
	p->record_type = record_type;
	snprintf(p->name, sizeof(p->name), "%s", name);
	err = rebuild_rb();
	if (err) {
		snprintf(log + log_len, cap - log_len, "ring buffer: %s", strerror(-err));
		goto cleanup;
	}
	*links = p->nr_links;
	err = (int)p->id;
	goto out;
cleanup:
	if (p) {
		destroy(p);
		rebuild_rb();
	}
out:
	log_buf = NULL;
	return err;
}

int progs_unload(uint32_t id)
{
	int i;

	for (i = 0; i < PVAGENT_MAX_PROGS; i++) {
		if (progs[i].id == id && id) {
			destroy(&progs[i]);
			return rebuild_rb();
		}
	}
	return -ENOENT;
}

unsigned progs_list(struct pvag_prog_info *out, unsigned max)
{
	unsigned n = 0;
	int i;

	for (i = 0; i < PVAGENT_MAX_PROGS; i++) {
		if (!progs[i].id)
			continue;
		if (n < max) {
			memset(&out[n], 0, sizeof(out[n]));
			out[n].id = progs[i].id;
			out[n].record_type = progs[i].record_type;
			memcpy(out[n].name, progs[i].name, sizeof(out[n].name));
			out[n].records = progs[i].records;
		}
		n++;
	}
	return n;
}

int progs_epoll_fd(void)
{
	return rb ? ring_buffer__epoll_fd(rb) : -1;
}

int progs_drain(void)
{
	return rb ? ring_buffer__consume(rb) : 0;
}
