// SPDX-License-Identifier: MIT
// Guest side of the shared-memory area (docs/shm-layout.md).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"
#include "sysfs.h"

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define PCI_DEVICES "/sys/bus/pci/devices"

uint64_t pvshm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* sysfs_find() match: the IVSHMEM PCI device. */
static int is_ivshmem(const char *dir, const char *entry, void *ctx)
{
	unsigned vendor, device;

	(void)ctx;
	return sysfs_read_hex(dir, entry, "vendor", &vendor) == 0 && sysfs_read_hex(dir, entry, "device", &device) == 0 &&
	       vendor == IVSHMEM_VENDOR && device == IVSHMEM_DEVICE;
}

/* Find the first IVSHMEM device; its sysfs name goes into `out`. */
static int find_ivshmem(char *out, size_t out_len)
{
	return sysfs_find(PCI_DEVICES, is_ivshmem, NULL, out, out_len);
}

int pvshm_open(struct pvshm *shm, char *why, size_t why_len)
{
	char dev[256], path[512];
	struct stat st;
	void *p;
	int fd, err;

	memset(shm, 0, sizeof(*shm));
	err = find_ivshmem(dev, sizeof(dev));
	if (err) {
		snprintf(why, why_len, "no IVSHMEM device (PCI %04x:%04x)", IVSHMEM_VENDOR, IVSHMEM_DEVICE);
		return err;
	}
	snprintf(path, sizeof(path), "%s/%s/enable", PCI_DEVICES, dev);
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1) { /* already enabled is fine */
		}
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/%s/resource2", PCI_DEVICES, dev);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_len, "open %s: %s", path, strerror(errno));
		return err;
	}
	if (fstat(fd, &st) || st.st_size < PVSHM_SIZE) {
		snprintf(why, why_len, "%s: BAR of %lld bytes, need %d", path, (long long)st.st_size, PVSHM_SIZE);
		close(fd);
		return -EINVAL;
	}
	p = mmap(NULL, PVSHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (err) {
		snprintf(why, why_len, "mmap %s: %s", path, strerror(-err));
		return err;
	}
	shm->base = p;
	shm->size = PVSHM_SIZE;
	shm->hdr = (volatile struct pvshm_header *)p;
	if (shm->hdr->magic != PVSHM_MAGIC || shm->hdr->version != PVSHM_VERSION ||
	    shm->hdr->size != PVSHM_SIZE || shm->hdr->ring_entries != PVSHM_RING_ENTRIES ||
	    shm->hdr->record_size != PVSHM_RECORD_SIZE || shm->hdr->slots_offset != PVSHM_SLOTS_OFFSET ||
	    shm->hdr->ring_offset != PVSHM_RING_OFFSET || shm->hdr->slot_size != PVSHM_SLOT_SIZE) {
		snprintf(why, why_len, "shared memory header not layout v%d (magic %08x version %u)", PVSHM_VERSION,
			 shm->hdr->magic, shm->hdr->version);
		pvshm_close(shm);
		return -EPROTO;
	}
	return 0;
}

void pvshm_close(struct pvshm *shm)
{
	if (shm->base)
		munmap((void *)shm->base, shm->size);
	memset(shm, 0, sizeof(*shm));
}

int pvshm_append(struct pvshm *shm, uint16_t type, const void *payload, uint16_t len, uint64_t ts_ns)
{
	volatile struct pvshm_header *h = shm->hdr;
	volatile struct pvshm_record *r;
	uint64_t head = h->ring_head, tail = __atomic_load_n(&h->ring_tail, __ATOMIC_ACQUIRE);

	if (len > PVSHM_RECORD_PAYLOAD)
		return -E2BIG;
	/* The host owns tail; a tail ahead of head (host restarted) counts as empty. */
	if (head - tail >= PVSHM_RING_ENTRIES && tail <= head) {
		__atomic_store_n(&h->ring_lost, h->ring_lost + 1, __ATOMIC_RELEASE);
		return -ENOSPC;
	}
	r = (volatile struct pvshm_record *)(shm->base + PVSHM_RING_OFFSET +
					     (head % PVSHM_RING_ENTRIES) * PVSHM_RECORD_SIZE);
	__atomic_store_n(&r->seq, 0, __ATOMIC_RELAXED);
	r->type = type;
	r->len = len;
	r->_pad = 0;
	r->ts_ns = ts_ns;
	memcpy((void *)r->payload, payload, len);
	memset((void *)(r->payload + len), 0, PVSHM_RECORD_PAYLOAD - len);
	__atomic_store_n(&r->seq, head + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&h->ring_head, head + 1, __ATOMIC_RELEASE);
	return 0;
}

volatile struct pvshm_vcpu_slot *pvshm_slot(struct pvshm *shm, unsigned vcpu)
{
	if (vcpu >= PVSHM_MAX_VCPUS)
		return NULL;
	return (volatile struct pvshm_vcpu_slot *)(shm->base + PVSHM_SLOTS_OFFSET + vcpu * PVSHM_SLOT_SIZE);
}
