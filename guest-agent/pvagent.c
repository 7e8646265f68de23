// SPDX-License-Identifier: MIT
// pvagent: pvrun's guest agent. It maps the shared-memory area (IVSHMEM BAR2),
// talks to the host over the virtio-serial port org.pvrun.agent.0 (framed
// protocol, docs/agent-protocol.md), loads the BPF programs the host sends and
// relays their ring-buffer records into the shared ring, kicking the host when
// it sleeps. It outlives the host side going away and coming back.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "progs.h"
#include "proto.h"
#include "scripts.h"
#include "shm.h"
#include "sysfs.h"

#ifndef PVAGENT_VERSION
#define PVAGENT_VERSION "0.0.0"
#endif

#define PORT_NAME PVAG_PORT_NAME
#define KICK_PORT_NAME PVAG_KICK_PORT_NAME
#define KICK_PORT_RETRY_NS 1000000000ull
#define RECONNECT_MS 100
/* How often the thread each vCPU runs is copied into the slots (the host looks every 10 ms). */
#define CURRENT_MS 10

static struct pvshm shm;
static struct pvagent_stats_counters counters;
static struct pvag_stats stats;
static int port_fd = -1;
static int kick_fd = -1; /* the kick port, when the host has one (docs/agent-protocol.md#kick) */
static int verbose;

/* Input buffer: one frame header + payload at most. */
static uint8_t *in_buf;
static size_t in_len;

/* One log line, written with a single write() so it never interleaves with the console's other lines. */
static void logf_(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "pvagent: ");

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) { /* nowhere to report it */
	}
}

/* sysfs_find() match: a virtio console device (virtio device id 3). */
static int is_virtio_console(const char *dir, const char *entry, void *ctx)
{
	unsigned id;

	(void)ctx;
	return sysfs_read_hex(dir, entry, "device", &id) == 0 && id == 3;
}

/* Whether any virtio console device exists. */
static int has_virtio_console(void)
{
	return sysfs_find("/sys/bus/virtio/devices", is_virtio_console, NULL, NULL, 0) == 0;
}

/* Write all of buf, waiting briefly when the port is full; false if the host is gone. */
static int write_all(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(port_fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = port_fd, .events = POLLOUT};

			if (poll(&pfd, 1, 1000) <= 0 || (pfd.revents & POLLHUP))
				return 0;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			return 0;
		}
	}
	return 1;
}

/* Frames come from the main thread and from relay threads (KICK): one writer at a time. */
static pthread_mutex_t port_lock = PTHREAD_MUTEX_INITIALIZER;

static void send_frame(uint16_t type, uint32_t id, const void *payload, uint32_t len)
{
	struct pvag_frame f = {.magic = PVAG_MAGIC, .version = PVAG_VERSION, .type = type, .id = id, .len = len};
	int ok;

	if (port_fd < 0)
		return;
	pthread_mutex_lock(&port_lock);
	ok = write_all(&f, sizeof(f)) && (!len || write_all(payload, len));
	pthread_mutex_unlock(&port_lock);
	if (!ok && type != PVAG_KICK)
		logf_("host went away while sending a frame");
}

static void send_error(uint32_t id, int err, const char *msg)
{
	size_t mlen = strlen(msg);
	uint8_t *buf = malloc(sizeof(struct pvag_error) + mlen);
	struct pvag_error e = {.err = err < 0 ? -err : err};

	if (!buf)
		return;
	memcpy(buf, &e, sizeof(e));
	memcpy(buf + sizeof(e), msg, mlen);
	send_frame(PVAG_ERROR, id, buf, (uint32_t)(sizeof(e) + mlen));
	free(buf);
}

/* Tell the guest's libraries which hint types have their programs attached:
 * record type t's feature bit is 1 << (t - 1) (pvrun_shm.h). */
static void publish_features(void)
{
	struct pvag_prog_info infos[PVAGENT_MAX_PROGS];
	unsigned n = progs_list(infos, PVAGENT_MAX_PROGS);
	uint32_t bits = 0;

	if (!shm.base)
		return;
	for (unsigned i = 0; i < n; i++)
		if (infos[i].record_type >= 1 && infos[i].record_type <= 32)
			bits |= 1u << (infos[i].record_type - 1);
	__atomic_store_n(&shm.hdr->agent_features, bits, __ATOMIC_RELEASE);
}

/* Whether a guest thread is inside a section or waits for a pvcs lock now. */
static int cells_active(void)
{
	uint32_t used;

	if (!shm.base)
		return 0;
	used = __atomic_load_n(&shm.hdr->cells_used, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < used && i < PVSHM_CELLS; i++) {
		volatile struct pvshm_cell *c = pvshm_cell(&shm, i);

		if (c->owner_tid && (c->depth || c->waiting))
			return 1;
	}
	return 0;
}

/* Free the critical-section cells of threads that ended without giving theirs
 * back (killed, or exec'd): otherwise the host would see their sections held
 * for ever. Once a second. */
static void collect_cells(void)
{
	static uint64_t last;
	uint64_t now = pvshm_now_ns();
	uint32_t used;

	if (!shm.base || now - last < 1000000000ull)
		return;
	last = now;
	used = __atomic_load_n(&shm.hdr->cells_used, __ATOMIC_ACQUIRE);
	for (uint32_t i = 0; i < used && i < PVSHM_CELLS; i++) {
		volatile struct pvshm_cell *c = pvshm_cell(&shm, i);
		uint32_t tid = __atomic_load_n(&c->owner_tid, __ATOMIC_ACQUIRE);

		if (tid == 0 || syscall(SYS_tgkill, c->owner_tgid, tid, 0) == 0 || errno != ESRCH)
			continue;
		c->depth = 0;
		c->waiting = 0;
		__atomic_compare_exchange_n(&c->owner_tid, &tid, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
}

/* The pvcs library's way in (docs/critical-sections.md): a process that
 * connects gets the BAR file's descriptor (SCM_RIGHTS) with one byte, the
 * layout version; without an area it gets the byte 0 and no descriptor. */
static int pvcs_listen(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", PVCS_SOCKET);
	mkdir(PVCS_SOCKET_DIR, 0755);
	unlink(PVCS_SOCKET);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || chmod(PVCS_SOCKET, 0666) || listen(fd, 16)) {
		logf_("critical-section socket %s: %s", PVCS_SOCKET, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void pvcs_serve(int listen_fd)
{
	int c;

	while ((c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} u;
		uint8_t version = shm.base ? PVSHM_VERSION : 0;
		struct iovec io = {.iov_base = &version, .iov_len = 1};
		struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1};

		memset(&u, 0, sizeof(u));
		if (shm.base) {
			m.msg_control = u.buf;
			m.msg_controllen = sizeof(u.buf);
			CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
			CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
			CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &shm.fd, sizeof(int));
		}
		if (sendmsg(c, &m, MSG_NOSIGNAL | MSG_DONTWAIT) != 1 && verbose)
			logf_("critical-section socket: send: %s", strerror(errno));
		close(c);
	}
}

static void handle_hello(uint32_t id, const uint8_t *p, uint32_t len)
{
	struct pvag_hello_reply r = {0};
	struct pvag_hello_req q;
	struct pvag_prog_info infos[1];
	struct utsname u;

	if (len < sizeof(q)) {
		send_error(id, EINVAL, "hello: payload too short");
		return;
	}
	memcpy(&q, p, sizeof(q));
	r.version = q.version < PVAG_VERSION ? q.version : PVAG_VERSION;
	scripts_stop_all(); /* a new host session sends its scripts again */
	if (!shm.base) { /* the host may have (re)created the area: try again */
		char why[256];

		if (pvshm_open(&shm, why, sizeof(why)) == 0) {
			shm.hdr->guest_epoch = shm.hdr->guest_epoch + 1;
			shm.hdr->agent_pid = (uint32_t)getpid();
		} else {
			logf_("%s", why);
		}
	}
	r.shm_ok = shm.base != NULL;
	publish_features();
	r.nr_cpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	r.guest_epoch = shm.base ? shm.hdr->guest_epoch : 0;
	r.programs = progs_list(infos, 0);
	r.shm_version = PVSHM_VERSION;
	snprintf(r.agent_version, sizeof(r.agent_version), "%.31s", PVAGENT_VERSION);
	if (uname(&u) == 0)
		snprintf(r.kernel_release, sizeof(r.kernel_release), "%.63s", u.release);
	stats.host_links++;
	send_frame(PVAG_REPLY, id, &r, sizeof(r));
}

static void handle_load(uint32_t id, const uint8_t *p, uint32_t len)
{
	struct pvag_load_req q;
	struct pvag_load_reply r = {0};
	char name[PVAG_NAME_LEN + 1];
	static char log[64 * 1024];
	int ret;

	if (len <= sizeof(q)) {
		send_error(id, EINVAL, "load: no object");
		return;
	}
	memcpy(&q, p, sizeof(q));
	memcpy(name, q.name, PVAG_NAME_LEN);
	name[PVAG_NAME_LEN] = '\0';
	ret = progs_load(name, q.record_type, p + sizeof(q), len - sizeof(q), &r.links, log, sizeof(log));
	if (ret < 0) {
		logf_("load %s failed: %s", name, strerror(-ret));
		send_error(id, ret, log[0] ? log : strerror(-ret));
		return;
	}
	r.id = (uint32_t)ret;
	publish_features();
	if (verbose)
		logf_("loaded %s as program %u (%u links)", name, r.id, r.links);
	send_frame(PVAG_REPLY, id, &r, sizeof(r));
}

/* The host loaded every program it will (none, if it cannot give hints): say so in
 * PVAG_LIVE_FILE ("programs N"), written whole before it appears, for /init and the
 * guest's own tools; and on the console. */
static void handle_live(uint32_t id, const uint8_t *p, uint32_t len)
{
	static const char tmp[] = PVAG_LIVE_FILE ".tmp";
	uint32_t programs;
	char text[32];
	int fd, n, ok;

	if (len != sizeof(programs)) {
		send_error(id, EINVAL, "live: payload must be a u32 program count");
		return;
	}
	memcpy(&programs, p, sizeof(programs));
	n = snprintf(text, sizeof(text), "programs %u\n", programs);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		send_error(id, errno, "live: cannot write " PVAG_LIVE_FILE);
		return;
	}
	ok = write(fd, text, (size_t)n) == n;
	ok = close(fd) == 0 && ok;
	if (ok) {
		/* Said before the file appears, so that the console has it before /init's ready line. */
		logf_("hints live: the host loaded %u programs", programs);
		ok = rename(tmp, PVAG_LIVE_FILE) == 0;
	}
	if (!ok) {
		int err = errno;

		unlink(tmp);
		send_error(id, err, "live: cannot write " PVAG_LIVE_FILE);
		return;
	}
	send_frame(PVAG_REPLY, id, NULL, 0);
}

/* Run a hint script the host sent with the guest's bpftrace (scripts.c). */
static void handle_script(uint32_t id, const uint8_t *p, uint32_t len)
{
	struct pvag_script_req q;
	char name[PVAG_NAME_LEN + 1], why[256] = "";
	uint32_t pid;
	int ret;

	if (len <= sizeof(q) || len - sizeof(q) > PVAG_SCRIPT_MAX) {
		send_error(id, EINVAL, "script: no text, or over PVAG_SCRIPT_MAX bytes");
		return;
	}
	memcpy(&q, p, sizeof(q));
	memcpy(name, q.name, PVAG_NAME_LEN);
	name[PVAG_NAME_LEN] = '\0';
	ret = scripts_start(q.script, name, (const char *)p + sizeof(q), len - sizeof(q), why, sizeof(why));
	if (ret < 0) {
		send_error(id, -ret, why);
		return;
	}
	if (verbose)
		logf_("hint script %s: bpftrace runs as pid %d", name, ret);
	pid = (uint32_t)ret;
	send_frame(PVAG_REPLY, id, &pid, sizeof(pid));
}

static void handle_request(const struct pvag_frame *f, const uint8_t *p)
{
	switch (f->type) {
	case PVAG_HELLO:
		handle_hello(f->id, p, f->len);
		break;
	case PVAG_LOAD:
		handle_load(f->id, p, f->len);
		break;
	case PVAG_UNLOAD: {
		uint32_t pid;
		int err;

		if (f->len != sizeof(pid)) {
			send_error(f->id, EINVAL, "unload: payload must be a u32 program id");
			break;
		}
		memcpy(&pid, p, sizeof(pid));
		err = progs_unload(pid);
		publish_features();
		if (err)
			send_error(f->id, err, "unload: no such program");
		else
			send_frame(PVAG_REPLY, f->id, NULL, 0);
		break;
	}
	case PVAG_LIST: {
		struct pvag_prog_info infos[PVAGENT_MAX_PROGS];
		uint8_t buf[4 + sizeof(infos)];
		uint32_t n = progs_list(infos, PVAGENT_MAX_PROGS);

		memcpy(buf, &n, 4);
		memcpy(buf + 4, infos, n * sizeof(infos[0]));
		send_frame(PVAG_REPLY, f->id, buf, 4 + n * (uint32_t)sizeof(infos[0]));
		break;
	}
	case PVAG_STATS: {
		struct pvag_prog_info none[1];

		stats.records = counters.records;
		stats.dropped = counters.dropped;
		stats.programs = progs_list(none, 0);
		send_frame(PVAG_REPLY, f->id, &stats, sizeof(stats));
		break;
	}
	case PVAG_LIVE:
		handle_live(f->id, p, f->len);
		break;
	case PVAG_SCRIPT:
		handle_script(f->id, p, f->len);
		break;
	case PVAG_SNAPSHOT: {
		static char log[256];
		uint32_t ran;
		int ret = progs_snapshot(log, sizeof(log));

		if (ret < 0) {
			send_error(f->id, -ret, log);
			break;
		}
		ran = (uint32_t)ret;
		if (verbose)
			logf_("snapshot: %u task iterators run again", ran);
		send_frame(PVAG_REPLY, f->id, &ran, sizeof(ran));
		break;
	}
	case PVAG_PING:
		if (f->len > 256)
			send_error(f->id, EMSGSIZE, "ping: payload over 256 bytes");
		else
			send_frame(PVAG_REPLY, f->id, p, f->len);
		break;
	default:
		stats.frames_bad++;
		send_error(f->id, EOPNOTSUPP, "unknown request type");
	}
}

/* Parse every complete frame in the input buffer; resynchronise on garbage. */
static void process_input(void)
{
	size_t off = 0;

	while (in_len - off >= sizeof(struct pvag_frame)) {
		struct pvag_frame f;

		memcpy(&f, in_buf + off, sizeof(f));
		if (f.magic != PVAG_MAGIC || f.len > PVAG_MAX_PAYLOAD) {
			off++; /* skip one byte and look for the next magic */
			stats.frames_bad++;
			continue;
		}
		if (in_len - off < sizeof(f) + f.len)
			break;
		stats.frames_in++;
		if (f.version != PVAG_VERSION)
			send_error(f.id, EPROTONOSUPPORT, "unsupported protocol version");
		else
			handle_request(&f, in_buf + off + sizeof(f));
		off += sizeof(f) + f.len;
	}
	memmove(in_buf, in_buf + off, in_len - off);
	in_len -= off;
}

/* Kick bytes come from relay threads: one at a time, and one look for the port per second at most. */
static pthread_mutex_t kick_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t kick_port_looked_ns;

/* One byte on the kick port; false when there is none or the host end is not
 * reading (then the KICK frame goes on the agent port as before). */
static int kick_byte(void)
{
	int ok = 0;

	pthread_mutex_lock(&kick_lock);
	if (kick_fd < 0 && pvshm_now_ns() - kick_port_looked_ns >= KICK_PORT_RETRY_NS) {
		char path[300];

		kick_port_looked_ns = pvshm_now_ns();
		if (virtio_port_path(KICK_PORT_NAME, path, sizeof(path)) == 0)
			kick_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	}
	if (kick_fd >= 0) {
		ssize_t n = write(kick_fd, "k", 1);

		ok = n == 1;
		/* EAGAIN: nobody reads on the host (no fast path) or it is full: the frame instead. */
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			close(kick_fd);
			kick_fd = -1;
		}
	}
	pthread_mutex_unlock(&kick_lock);
	return ok;
}

/* After relaying, wake the host if it asked for a kick: a byte on the kick
 * port when the host reads it there, else a KICK frame. */
static void maybe_kick(void)
{
	if (!shm.base || port_fd < 0)
		return;
	if (__atomic_exchange_n(&shm.hdr->kick_wanted, 0, __ATOMIC_ACQ_REL)) {
		__atomic_add_fetch(&stats.kicks, 1, __ATOMIC_RELAXED);
		if (!kick_byte())
			send_frame(PVAG_KICK, 0, NULL, 0);
	}
}

static void usage(FILE *out)
{
	fprintf(out, "usage: pvagent [--version | --help | --verbose]\n"
		     "Runs in the guest: relays BPF hint records to the pvrun host through shared memory.\n");
}

int main(int argc, char **argv)
{
	struct epoll_event ev, events[8];
	char port_path[300], why[256];
	int ep, rb_fd = -1, port_in_epoll = 0, pvcs_fd;
	unsigned rb_gen = 0;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("pvagent %s (libbpf %u.%u)\n", PVAGENT_VERSION, libbpf_major_version(), libbpf_minor_version());
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--verbose") == 0)
		verbose = 1;
	else if (argc != 1) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	in_buf = malloc(sizeof(struct pvag_frame) + PVAG_MAX_PAYLOAD);
	if (!in_buf)
		return 1;
	/* Records must not wait behind the busy threads whose hints they carry. */
	{
		struct sched_param sp = {.sched_priority = 50};

		if (sched_setscheduler(0, SCHED_FIFO, &sp))
			logf_("running without real-time priority: %s", strerror(errno));
	}
	/* No channel, no agent (under plain QEMU, say so once). Ports appear asynchronously after virtio_console binds: wait a little, if there is a console device. */
	for (int tries = 0; virtio_port_path(PORT_NAME, port_path, sizeof(port_path)); tries++) {
		if (!has_virtio_console() || tries == 50) {
			logf_("no virtio-serial port named %s: running without hints (is this VM started by pvrun?)", PORT_NAME);
			return 1;
		}
		usleep(100 * 1000);
	}
	if (pvshm_open(&shm, why, sizeof(why)) == 0) {
		uint64_t epoch = 0;

		if (getrandom(&epoch, sizeof(epoch), GRND_NONBLOCK) != sizeof(epoch) || !epoch)
			epoch = pvshm_now_ns() | 1;
		shm.hdr->guest_epoch = epoch;
		shm.hdr->agent_pid = (uint32_t)getpid();
	} else {
		logf_("%s; waiting for the host", why);
	}
	progs_init(&shm, &counters, maybe_kick);
	scripts_init(send_frame);
	port_fd = open(port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (port_fd < 0) {
		logf_("open %s: %s", port_path, strerror(errno));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return 1;
	pvcs_fd = pvcs_listen();
	if (pvcs_fd >= 0) {
		ev = (struct epoll_event){.events = EPOLLIN, .data.fd = pvcs_fd};
		epoll_ctl(ep, EPOLL_CTL_ADD, pvcs_fd, &ev);
	}
	if (verbose)
		logf_("ready on %s, shared memory %s", port_path, shm.base ? "mapped" : "absent");
	for (;;) {
		unsigned gen;
		int n, i, cur = progs_epoll_fd(&gen);

		if (gen != rb_gen) { /* programs changed: watch the new ring-buffer manager */
			rb_gen = gen;
			if (cur >= 0) {
				ev = (struct epoll_event){.events = EPOLLIN, .data.fd = cur};
				epoll_ctl(ep, EPOLL_CTL_ADD, cur, &ev);
			}
			rb_fd = cur;
		}
		if (!port_in_epoll) {
			struct pollfd pfd = {.fd = port_fd, .events = POLLIN};

			/* Host side not connected: look again every RECONNECT_MS. */
			if (poll(&pfd, 1, 0) >= 0 && !(pfd.revents & POLLHUP)) {
				ev = (struct epoll_event){.events = EPOLLIN | EPOLLHUP, .data.fd = port_fd};
				if (epoll_ctl(ep, EPOLL_CTL_ADD, port_fd, &ev) == 0)
					port_in_epoll = 1;
				in_len = 0;
			}
		}
		/* While a program names the thread each vCPU runs (the host observes critical
		 * sections) and a guest thread is inside a section or waits for a pvcs lock,
		 * publish it at the host's pace: every CURRENT_MS. Otherwise wake once a
		 * second: a wake-up every 10 ms costs a busy guest under TCG several per cent
		 * of its work (docs/critical-sections.md). */
		n = epoll_wait(ep, events, 8, !port_in_epoll ? RECONNECT_MS : progs_have_current() && cells_active() ? CURRENT_MS : 1000);
		if (n < 0 && errno != EINTR)
			return 1;
		collect_cells();
		progs_publish_current();
		for (i = 0; i < n; i++) {
			if (events[i].data.fd == rb_fd) {
				progs_drain();
				maybe_kick();
			} else if (events[i].data.fd == pvcs_fd) {
				pvcs_serve(pvcs_fd);
			} else if (events[i].data.fd == port_fd) {
				ssize_t got = 0;

				if (events[i].events & EPOLLIN)
					got = read(port_fd, in_buf + in_len, sizeof(struct pvag_frame) + PVAG_MAX_PAYLOAD - in_len);
				if (got > 0) {
					in_len += (size_t)got;
					process_input();
					if (in_len == sizeof(struct pvag_frame) + PVAG_MAX_PAYLOAD)
						in_len = 0; /* cannot happen with valid frames: drop */
				} else if ((events[i].events & EPOLLHUP) || got == 0) {
					epoll_ctl(ep, EPOLL_CTL_DEL, port_fd, NULL);
					port_in_epoll = 0;
					in_len = 0;
				}
			}
		}
	}
}
