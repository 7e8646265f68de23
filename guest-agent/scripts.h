/* SPDX-License-Identifier: MIT */
/* Hint scripts: bpftrace scripts the host sends (PVAG_SCRIPT), run with the guest's
 * bpftrace; their `pvhint ...` lines become hint records, other lines go to the host. */
#ifndef PVAGENT_SCRIPTS_H
#define PVAGENT_SCRIPTS_H

#include <stddef.h>
#include <stdint.h>

/* How a SCRIPT_OUT frame leaves (the agent's send_frame). */
typedef void (*scripts_send_fn)(uint16_t type, uint32_t id, const void *payload, uint32_t len);

void scripts_init(scripts_send_fn send);
/* Start bpftrace on `text`; bpftrace's pid, or -errno with why in `err`. */
int scripts_start(uint32_t script, const char *name, const char *text, size_t len, char *err, size_t err_len);
/* Stop every running script (a new host session starts over): SIGTERM, then SIGKILL after 2 s. */
void scripts_stop_all(void);
/* Parse one `pvhint affinity <tid> <cpulist>` line into the mask of vCPUs (cpulist: 1, 0-3,6
 * or `all`); 0, or -errno (EINVAL: not that form; ERANGE: a CPU at or beyond nr_cpus). */
int scripts_parse_hint(const char *line, unsigned nr_cpus, uint32_t *tid, uint64_t mask[4]);

#endif
