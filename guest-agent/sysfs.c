// SPDX-License-Identifier: MIT
// Small sysfs helpers shared by the agent and pvhint.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysfs.h"

int sysfs_read(const char *dir, const char *entry, const char *file, char *buf, size_t len)
{
	char path[512];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, entry, file);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -EINVAL;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int sysfs_read_hex(const char *dir, const char *entry, const char *file, unsigned *out)
{
	char buf[32], *end;
	int err = sysfs_read(dir, entry, file, buf, sizeof(buf));

	if (err)
		return err;
	*out = (unsigned)strtoul(buf, &end, 16);
	return end == buf ? -EINVAL : 0;
}

int sysfs_find(const char *dir, int (*match)(const char *dir, const char *entry, void *ctx), void *ctx,
	       char *found, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int err = -ENODEV;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !match(dir, e->d_name, ctx))
			continue;
		if (found)
			snprintf(found, len, "%s", e->d_name);
		err = 0;
		break;
	}
	closedir(d);
	return err;
}

/* sysfs_find() match: a virtio port whose name is ctx. */
static int is_named_port(const char *dir, const char *entry, void *ctx)
{
	char name[128];

	return sysfs_read(dir, entry, "name", name, sizeof(name)) == 0 && strcmp(name, ctx) == 0;
}

/* The /dev node of the virtio-serial port called `port_name`. */
int virtio_port_path(const char *port_name, char *out, size_t len)
{
	char entry[256];
	int err = sysfs_find("/sys/class/virtio-ports", is_named_port, (void *)port_name, entry, sizeof(entry));

	if (!err)
		snprintf(out, len, "/dev/%s", entry);
	return err;
}
