/* SPDX-License-Identifier: MIT */
/* Small sysfs helpers: find a device directory by what its attribute files say. */
#ifndef PVAGENT_SYSFS_H
#define PVAGENT_SYSFS_H

#include <stddef.h>

/* The first line of <dir>/<entry>/<file>, newline stripped. 0 or -errno. */
int sysfs_read(const char *dir, const char *entry, const char *file, char *buf, size_t len);
/* A hexadecimal number from <dir>/<entry>/<file>. 0 or -errno. */
int sysfs_read_hex(const char *dir, const char *entry, const char *file, unsigned *out);
/* The first entry of `dir` (dot entries skipped) for which match() returns non-zero,
 * copied into `found`. 0, -ENODEV if none matched, or -errno if `dir` cannot be read. */
int sysfs_find(const char *dir, int (*match)(const char *dir, const char *entry, void *ctx), void *ctx,
	       char *found, size_t len);
/* The /dev node of the virtio-serial port called `port_name`. 0, -ENODEV if there is none, or -errno. */
int virtio_port_path(const char *port_name, char *out, size_t len);

#endif
