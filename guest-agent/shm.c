// SPDX-License-Identifier: MIT
// Guest side of the shared-memory area (docs/shm-layout.md).
#include <dirent.h>
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

/* Whether sysfs device `entry` is an IVSHMEM device. */
static int is_ivshmem(const char *dir, const char *entry)
{
	unsigned vendor, device;

	return sysfs_read_hex(dir, entry, "vendor", &vendor) == 0 && sysfs_read_hex(dir, entry, "device", &device) == 0 &&
	       vendor == IVSHMEM_VENDOR && device == IVSHMEM_DEVICE;
}

/* Write `value` to the device's sysfs `enable` file (errors ignored: already so is fine). */
static void set_enable(const char *dev, const char *value)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/enable", PCI_DEVICES, dev);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return;
	if (write(fd, value, 1) != 1) { /* nothing to do about it */
	}
	close(fd);
}

/* Whether the header at `p` is the layout this agent speaks (PVSHM_VERSION). */
static int layout_ok(const volatile struct pvshm_header *h)
{
	return h->version == PVSHM_VERSION && h->size == PVSHM_SIZE && h->ring_entries == PVSHM_RING_ENTRIES &&
	       h->record_size == PVSHM_RECORD_SIZE && h->slots_offset == PVSHM_SLOTS_OFFSET &&
	       h->ring_offset == PVSHM_RING_OFFSET && h->slot_size == PVSHM_SLOT_SIZE &&
	       h->cells_offset == PVSHM_CELLS_OFFSET && h->cells == PVSHM_CELLS && h->cell_size == PVSHM_CELL_SIZE;
}

/*
 * Map BAR2 of IVSHMEM device `dev` if it carries pvrun's header: 0, or
 * -ENOENT when it is someone else's (left as found), or another -errno with
 * `why` filled in (pvrun's device, but unusable).
 */
static int try_device(struct pvshm *shm, const char *dev, char *why, size_t why_len)
{
	char path[512], enabled[8] = "";
	int we_enabled, fd, err;
	struct stat st;
	void *p;

	we_enabled = sysfs_read(PCI_DEVICES, dev, "enable", enabled, sizeof(enabled)) == 0 && strcmp(enabled, "0") == 0;
	if (we_enabled)
		set_enable(dev, "1");
	snprintf(path, sizeof(path), "%s/%s/resource2", PCI_DEVICES, dev);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, why_len, "open %.160s: %.64s", path, strerror(errno));
		goto not_mapped;
	}
	if (fstat(fd, &st) || st.st_size < PVSHM_SIZE) {
		close(fd);
		err = -ENOENT; /* too small to be pvrun's */
		goto not_mapped;
	}
	p = mmap(NULL, PVSHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = p == MAP_FAILED ? -errno : 0;
	if (err) {
		close(fd);
		snprintf(why, why_len, "mmap %.160s: %.64s", path, strerror(-err));
		goto not_mapped;
	}
	if (((volatile struct pvshm_header *)p)->magic != PVSHM_MAGIC) {
		close(fd);
		munmap(p, PVSHM_SIZE);
		err = -ENOENT;
		goto not_mapped;
	}
	if (!layout_ok((volatile struct pvshm_header *)p)) {
		snprintf(why, why_len,
			 "pvrun's shared memory (%.32s) is layout v%u, this agent speaks v%d: use the agent of the host's pvrun",
			 dev, ((volatile struct pvshm_header *)p)->version, PVSHM_VERSION);
		close(fd);
		munmap(p, PVSHM_SIZE);
		return -EPROTO;
	}
	shm->fd = fd; /* kept: the pvcs library's processes get a copy (docs/critical-sections.md) */
	shm->base = p;
	shm->size = PVSHM_SIZE;
	shm->hdr = (volatile struct pvshm_header *)p;
	return 0;
not_mapped:
	if (we_enabled && err == -ENOENT)
		set_enable(dev, "0");
	return err;
}

int pvshm_open(struct pvshm *shm, char *why, size_t why_len)
{
	char dev_why[256] = "";
	struct dirent *e;
	int found = 0, err = -ENODEV;
	DIR *d;

	memset(shm, 0, sizeof(*shm));
	d = opendir(PCI_DEVICES);
	if (!d) {
		snprintf(why, why_len, "%s: %s", PCI_DEVICES, strerror(errno));
		return -errno;
	}
	/* Every IVSHMEM device: the user's own may come first; pvrun's carries its header. */
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !is_ivshmem(PCI_DEVICES, e->d_name))
			continue;
		found++;
		err = try_device(shm, e->d_name, dev_why, sizeof(dev_why));
		if (err != -ENOENT)
			break;
	}
	closedir(d);
	if (err == 0)
		return 0;
	if (found == 0)
		snprintf(why, why_len, "no IVSHMEM device (PCI %04x:%04x)", IVSHMEM_VENDOR, IVSHMEM_DEVICE);
	else if (err == -ENOENT)
		snprintf(why, why_len, "none of %d IVSHMEM device%s carries pvrun's header (magic %08x)", found,
			 found == 1 ? "" : "s", PVSHM_MAGIC);
	else
		snprintf(why, why_len, "%.240s", dev_why);
	return err == -ENOENT ? -ENODEV : err;
}

void pvshm_close(struct pvshm *shm)
{
	if (shm->base) {
		munmap((void *)shm->base, shm->size);
		close(shm->fd);
	}
	memset(shm, 0, sizeof(*shm));
	shm->fd = -1;
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

void pvshm_count_lost(struct pvshm *shm, uint64_t n)
{
	volatile struct pvshm_header *h = shm->hdr;

	__atomic_store_n(&h->ring_lost, h->ring_lost + n, __ATOMIC_RELEASE);
}

volatile struct pvshm_vcpu_slot *pvshm_slot(struct pvshm *shm, unsigned vcpu)
{
	if (vcpu >= PVSHM_MAX_VCPUS)
		return NULL;
	return (volatile struct pvshm_vcpu_slot *)(shm->base + PVSHM_SLOTS_OFFSET + vcpu * PVSHM_SLOT_SIZE);
}

volatile struct pvshm_cell *pvshm_cell(struct pvshm *shm, unsigned i)
{
	if (i >= PVSHM_CELLS)
		return NULL;
	return (volatile struct pvshm_cell *)(shm->base + PVSHM_CELLS_OFFSET + (size_t)i * PVSHM_CELL_SIZE);
}
