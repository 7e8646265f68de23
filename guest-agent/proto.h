/* SPDX-License-Identifier: MIT */
/* The pvrun agent protocol, version 1 (docs/agent-protocol.md): framed binary
 * messages over the virtio-serial port org.pvrun.agent.0. The host's
 * src/agent/protocol.ts mirrors this file. Little-endian, fixed width. */
#ifndef PVAGENT_PROTO_H
#define PVAGENT_PROTO_H

#include <stdint.h>

#define PVAG_MAGIC 0x47415650u /* "PVAG" */
#define PVAG_VERSION 1
#define PVAG_MAX_PAYLOAD (4u << 20) /* 4 MiB: BPF objects are far smaller */
#define PVAG_NAME_LEN 32
/* The virtio-serial ports pvrun adds (src/vm/devices.ts): this protocol's,
 * and the one the agent writes its kick byte to (docs/fast-path.md). */
#define PVAG_PORT_NAME "org.pvrun.agent.0"
#define PVAG_KICK_PORT_NAME "org.pvrun.kick.0"
/* Where the agent says, in the guest, that the host has loaded its programs (LIVE): the
 * default image's /init waits for it before it says it is ready. */
#define PVAG_LIVE_FILE "/run/pvagent.live"

/* Frame types. Requests come from the host; each gets exactly one REPLY or
 * ERROR with the same id. KICK and LOG are unsolicited, id 0. */
enum pvag_type {
	PVAG_HELLO = 1,  /* req: pvag_hello_req; reply: pvag_hello_reply */
	PVAG_LOAD = 2,   /* req: pvag_load_req + ELF object; reply: pvag_load_reply */
	PVAG_UNLOAD = 3, /* req: u32 program id; reply: empty */
	PVAG_LIST = 4,   /* req: empty; reply: u32 count + count * pvag_prog_info */
	PVAG_STATS = 5,  /* req: empty; reply: pvag_stats */
	PVAG_PING = 6,   /* req: any bytes (<= 256); reply: the same bytes */
	PVAG_LIVE = 7,   /* req: u32 programs the host loaded (its last request of a handshake); reply: empty */
	PVAG_SNAPSHOT = 8, /* req: empty; reply: u32 task iterators run again (records lost: the host starts over) */
	PVAG_REPLY = 0x100,
	PVAG_ERROR = 0x101, /* pvag_error + message (libbpf/verifier log, UTF-8) */
	PVAG_KICK = 0x200,  /* guest → host: records are waiting in the ring */
	PVAG_LOG = 0x201,   /* guest → host: one line of agent log text */
	PVAG_SCRIPT = 9,    /* req: pvag_script_req + a bpftrace script (UTF-8); reply: u32 bpftrace's pid; ERROR ENOENT: no bpftrace */
	PVAG_SCRIPT_OUT = 0x202, /* guest → host: pvag_script_out + one line of a script's (no newline) */
};

/* Hint scripts (docs/hint-programs.md#bpftrace-hint-scripts): the host sends a script's text,
 * the agent runs it with the guest's bpftrace and turns its `pvhint ...` lines into records. */
#define PVAG_SCRIPT_MAX (64u << 10)  /* a script's text, bytes */
#define PVAG_SCRIPT_LINE_MAX 512     /* a line relayed in SCRIPT_OUT (longer ones are cut) */
#define PVAG_MAX_SCRIPTS 8           /* scripts running at once */

struct pvag_script_req {
	uint32_t script;            /* 0: the host's number for it, echoed in SCRIPT_OUT */
	uint32_t _pad;              /* 4 */
	char name[PVAG_NAME_LEN];   /* 8: its file name, NUL-padded (for the guest's messages) */
	/* followed by the script's text */
};                                  /* 40 */

enum pvag_script_stream {
	PVAG_SCRIPT_STDOUT = 1,   /* a line that is not a hint */
	PVAG_SCRIPT_STDERR = 2,   /* a line of bpftrace's errors and warnings */
	PVAG_SCRIPT_EXIT = 3,     /* bpftrace ended: status = its exit status, 128 + n for signal n; no text */
	PVAG_SCRIPT_REFUSED = 4,  /* a `pvhint` line not taken: status = errno why; the text is the line */
};

struct pvag_script_out {
	uint32_t script;   /*  0: pvag_script_req.script */
	uint16_t stream;   /*  4: enum pvag_script_stream */
	uint16_t _pad;     /*  6 */
	int32_t status;    /*  8 */
	uint32_t hints;    /* 12: hint records the script has given so far */
	/* followed by the line */
};                         /* 16 */

struct pvag_frame {
	uint32_t magic;   /*  0 */
	uint16_t version; /*  4 */
	uint16_t type;    /*  6 */
	uint32_t id;      /*  8 */
	uint32_t len;     /* 12: payload bytes that follow */
};                        /* 16 */

struct pvag_hello_req {
	uint16_t version;    /* 0: highest protocol version the host speaks */
	uint16_t _pad;       /* 2 */
	uint32_t shm_size;   /* 4: size of the area the host created */
};                           /* 8 */

struct pvag_hello_reply {
	uint16_t version;         /*   0: protocol version the agent will speak */
	uint16_t shm_ok;          /*   2: 1 = the agent mapped and validated the area */
	uint32_t nr_cpus;         /*   4: guest CPUs online */
	uint64_t guest_epoch;     /*   8 */
	uint32_t programs;        /*  16: programs currently loaded */
	uint32_t shm_version;     /*  20: shared-memory layout the agent speaks (0: an agent before v2, which spoke v1) */
	char agent_version[32];   /*  24 */
	char kernel_release[64];  /*  56 */
};                                /* 120 */

struct pvag_load_req {
	uint32_t record_type;        /*  0: PVSHM_REC_* the program's ring-buffer records are tagged with */
	uint32_t _pad;               /*  4 */
	char name[PVAG_NAME_LEN];    /*  8: NUL-padded */
	/* followed by the ELF object (payload length - 40 bytes) */
};                                   /* 40 */

struct pvag_load_reply {
	uint32_t id;       /* 0: program id for UNLOAD */
	uint32_t links;    /* 4: attached BPF programs in the object */
};                         /* 8 */

struct pvag_prog_info {
	uint32_t id;                 /*  0 */
	uint32_t record_type;        /*  4 */
	char name[PVAG_NAME_LEN];    /*  8 */
	uint64_t records;            /* 40: records relayed */
};                                   /* 48 */

struct pvag_stats {
	uint64_t records;     /*  0: relayed into the ring */
	uint64_t dropped;     /*  8: dropped (ring full, oversized, or no shared memory) */
	uint64_t kicks;       /* 16: KICK frames sent */
	uint64_t frames_in;   /* 24: frames received */
	uint64_t frames_bad;  /* 32: bytes skipped resynchronising + frames rejected */
	uint32_t programs;    /* 40 */
	uint32_t host_links;  /* 44: times the host (re)connected */
};                            /* 48 */

struct pvag_error {
	int32_t err;      /* 0: positive errno */
	uint32_t _pad;    /* 4 */
	/* followed by a UTF-8 message */
};                        /* 8 */

#endif
