/* SPDX-License-Identifier: MIT */
/* Hint scripts (docs/hint-programs.md#bpftrace-hint-scripts): the host sends a bpftrace
 * script, the agent writes it to /run/pvagent-scripts/ and runs the guest's bpftrace on it
 * (unbuffered, at normal priority, killed with the agent). A thread per script reads its
 * output: a `pvhint affinity <tid> <cpulist>` line becomes an affinity record in the shared
 * ring (as if the thread had pinned itself), and an exit record when that thread is gone;
 * other lines, bpftrace's errors and its exit status go to the host in SCRIPT_OUT frames, at
 * most LINES_PER_S a second per script (the rest counted and said). */
#include "scripts.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../bpf/affinity.h"
#include "../bpf/pvrun_shm.h"
#include "progs.h"
#include "proto.h"

#define SCRIPT_DIR "/run/pvagent-scripts"
#define LINES_PER_S 100
#define MAX_HINTED 256

struct script {
	int used;
	uint32_t id;
	char name[PVAG_NAME_LEN + 1];
	pid_t pid;
	int fds[2]; /* stdout, stderr */
	uint32_t hints;
	int stopping;
	struct timespec stop_at;
	unsigned sent_this_second, dropped;
	time_t second;
	pthread_t thread;
};

static struct script scripts[PVAG_MAX_SCRIPTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static scripts_send_fn send_out;

/* Threads a script hinted: their exit is said with an exit record (the affinity program
 * says it only of threads that pinned themselves). */
static struct {
	uint32_t tid, tgid;
	char comm[PV_COMM_LEN];
} hinted[MAX_HINTED];
static unsigned nr_hinted;

void scripts_init(scripts_send_fn send)
{
	send_out = send;
}

static const char *find_bpftrace(void)
{
	static const char *const paths[] = {"/usr/bin/bpftrace", "/usr/sbin/bpftrace", "/usr/local/bin/bpftrace", "/bin/bpftrace"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

static void say(struct script *s, uint16_t stream, int32_t status, const char *text, size_t len)
{
	uint8_t buf[sizeof(struct pvag_script_out) + PVAG_SCRIPT_LINE_MAX];
	struct pvag_script_out o = {.script = s->id, .stream = stream, .status = status, .hints = s->hints};

	if (len > PVAG_SCRIPT_LINE_MAX)
		len = PVAG_SCRIPT_LINE_MAX;
	memcpy(buf, &o, sizeof(o));
	memcpy(buf + sizeof(o), text, len);
	if (send_out)
		send_out(PVAG_SCRIPT_OUT, 0, buf, (uint32_t)(sizeof(o) + len));
}

/* A line for the host, unless this second's share is spent (then counted, and said once the next second begins). */
static void say_limited(struct script *s, uint16_t stream, int32_t status, const char *text, size_t len)
{
	time_t now = time(NULL);

	if (now != s->second) {
		if (s->dropped) {
			char msg[96];
			int n = snprintf(msg, sizeof(msg), "pvagent: %u lines of this script's output dropped (over %d a second)", s->dropped,
					 LINES_PER_S);

			say(s, PVAG_SCRIPT_STDERR, 0, msg, (size_t)n);
		}
		s->second = now;
		s->sent_this_second = 0;
		s->dropped = 0;
	}
	if (s->sent_this_second >= LINES_PER_S) {
		s->dropped++;
		return;
	}
	s->sent_this_second++;
	say(s, stream, status, text, len);
}

int scripts_parse_hint(const char *line, unsigned nr_cpus, uint32_t *tid, uint64_t mask[4])
{
	char list[256], *end, *part, *save = NULL;
	unsigned long t;
	int n = 0;

	if (nr_cpus == 0 || nr_cpus > 64 * PV_AFFINITY_MASK_WORDS)
		nr_cpus = 64 * PV_AFFINITY_MASK_WORDS;
	if (sscanf(line, "pvhint affinity %lu %255s %n", &t, list, &n) != 2 || line[n] != '\0' || t == 0 || t > 0x3fffffff)
		return -EINVAL;
	*tid = (uint32_t)t;
	memset(mask, 0, sizeof(uint64_t) * PV_AFFINITY_MASK_WORDS);
	if (strcmp(list, "all") == 0) {
		for (unsigned c = 0; c < nr_cpus; c++)
			mask[c / 64] |= 1ull << (c % 64);
		return 0;
	}
	for (part = strtok_r(list, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		unsigned long lo, hi;

		if (*part < '0' || *part > '9')
			return -EINVAL;
		lo = strtoul(part, &end, 10);
		hi = lo;
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				return -EINVAL;
			hi = strtoul(end + 1, &end, 10);
		}
		if (*end != '\0' || hi < lo)
			return -EINVAL;
		if (hi >= nr_cpus)
			return -ERANGE;
		for (unsigned long c = lo; c <= hi; c++)
			mask[c / 64] |= 1ull << (c % 64);
	}
	return mask[0] | mask[1] | mask[2] | mask[3] ? 0 : -EINVAL;
}

/* The thread's process and name from /proc; -ESRCH if it is gone. */
static int thread_facts(uint32_t tid, uint32_t *tgid, char comm[PV_COMM_LEN])
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/status", tid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	*tgid = 0;
	memset(comm, 0, PV_COMM_LEN);
	while (fgets(buf, sizeof(buf), f)) {
		if (strncmp(buf, "Name:\t", 6) == 0) {
			p = strchr(buf + 6, '\n');
			if (p)
				*p = '\0';
			snprintf(comm, PV_COMM_LEN, "%.15s", buf + 6);
		} else if (strncmp(buf, "Tgid:\t", 6) == 0) {
			*tgid = (uint32_t)strtoul(buf + 6, NULL, 10);
		}
	}
	fclose(f);
	return *tgid ? 0 : -ESRCH;
}

static int send_record(uint32_t kind, uint32_t tid, uint32_t tgid, const char comm[PV_COMM_LEN], const uint64_t mask[4])
{
	struct pv_affinity_event e = {.ts_ns = pvshm_now_ns(), .kind = kind, .tid = tid, .tgid = tgid};

	memcpy(e.comm, comm, PV_COMM_LEN);
	if (mask)
		memcpy(e.mask, mask, sizeof(e.mask));
	return progs_append(PVSHM_REC_AFFINITY, &e, sizeof(e));
}

static int give_hint(struct script *s, const char *line)
{
	uint64_t mask[PV_AFFINITY_MASK_WORDS];
	uint32_t tid, tgid;
	char comm[PV_COMM_LEN];
	int err = scripts_parse_hint(line, (unsigned)sysconf(_SC_NPROCESSORS_ONLN), &tid, mask);

	if (!err)
		err = thread_facts(tid, &tgid, comm);
	if (!err)
		err = send_record(PV_AFFINITY_SET, tid, tgid, comm, mask);
	if (err)
		return err;
	s->hints++;
	pthread_mutex_lock(&lock);
	unsigned i;
	for (i = 0; i < nr_hinted && hinted[i].tid != tid; i++)
		;
	if (i == nr_hinted && nr_hinted < MAX_HINTED)
		nr_hinted++;
	if (i < MAX_HINTED) {
		hinted[i].tid = tid;
		hinted[i].tgid = tgid;
		memcpy(hinted[i].comm, comm, PV_COMM_LEN);
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

/* Threads a script hinted that are gone: their exit record, once. */
static void reap_hinted(void)
{
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < nr_hinted;) {
		char path[32];

		snprintf(path, sizeof(path), "/proc/%u", hinted[i].tid);
		if (access(path, F_OK) == 0) {
			i++;
			continue;
		}
		send_record(PV_AFFINITY_EXIT, hinted[i].tid, hinted[i].tgid, hinted[i].comm, NULL);
		hinted[i] = hinted[--nr_hinted];
	}
	pthread_mutex_unlock(&lock);
}

static void line_out(struct script *s, int stream, const char *line, size_t len)
{
	if (stream == 0 && strncmp(line, "pvhint ", 7) == 0) {
		int err = give_hint(s, line);

		if (err)
			say_limited(s, PVAG_SCRIPT_REFUSED, -err, line, len);
		return;
	}
	say_limited(s, stream == 0 ? PVAG_SCRIPT_STDOUT : PVAG_SCRIPT_STDERR, 0, line, len);
}

static void *script_main(void *arg)
{
	struct script *s = arg;
	char bufs[2][PVAG_SCRIPT_LINE_MAX + 1];
	size_t lens[2] = {0, 0};
	int skipping[2] = {0, 0}, open_fds = 2, status = 0;
	time_t reaped = 0;

	while (open_fds) {
		struct pollfd pfd[2] = {{.fd = s->fds[0], .events = POLLIN}, {.fd = s->fds[1], .events = POLLIN}};
		int n = poll(pfd, 2, 1000);
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec != reaped) { /* once a second, however much the script prints */
			reaped = now.tv_sec;
			reap_hinted();
		}
		if (s->stopping && now.tv_sec - s->stop_at.tv_sec >= 2)
			kill(s->pid, SIGKILL);
		if (n <= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			char chunk[4096];
			ssize_t got;

			if (s->fds[k] < 0 || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(s->fds[k], chunk, sizeof(chunk));
			if (got <= 0) {
				if (got < 0 && errno == EINTR)
					continue;
				if (lens[k] && !skipping[k])
					line_out(s, k, bufs[k], lens[k]);
				close(s->fds[k]);
				s->fds[k] = -1;
				open_fds--;
				continue;
			}
			for (ssize_t i = 0; i < got; i++) {
				char c = chunk[i];

				if (c == '\n') {
					if (!skipping[k]) {
						bufs[k][lens[k]] = '\0';
						line_out(s, k, bufs[k], lens[k]);
					}
					lens[k] = 0;
					skipping[k] = 0;
				} else if (!skipping[k]) {
					bufs[k][lens[k]++] = c;
					if (lens[k] == PVAG_SCRIPT_LINE_MAX) { /* a line too long: what fits goes, the rest is skipped */
						bufs[k][lens[k]] = '\0';
						line_out(s, k, bufs[k], lens[k]);
						lens[k] = 0;
						skipping[k] = 1;
					}
				}
			}
		}
	}
	while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
		;
	say(s, PVAG_SCRIPT_EXIT, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), "", 0);
	{
		char path[64];

		snprintf(path, sizeof(path), SCRIPT_DIR "/%u.bt", s->id);
		unlink(path);
	}
	pthread_mutex_lock(&lock);
	s->used = 0;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int scripts_start(uint32_t id, const char *name, const char *text, size_t len, char *err, size_t err_len)
{
	const char *bpftrace = find_bpftrace();
	struct script *s = NULL;
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, fd;
	char path[64];
	pid_t pid;

	if (!bpftrace) {
		snprintf(err, err_len, "no bpftrace in the guest (looked in /usr/bin, /usr/sbin, /usr/local/bin, /bin)");
		return -ENOENT;
	}
	pthread_mutex_lock(&lock);
	for (int i = 0; i < PVAG_MAX_SCRIPTS && !s; i++)
		if (!scripts[i].used)
			s = &scripts[i];
	if (s) {
		memset(s, 0, sizeof(*s));
		s->used = 1;
	}
	pthread_mutex_unlock(&lock);
	if (!s) {
		snprintf(err, err_len, "%d scripts run already", PVAG_MAX_SCRIPTS);
		return -EBUSY;
	}
	s->id = id;
	snprintf(s->name, sizeof(s->name), "%s", name);
	mkdir(SCRIPT_DIR, 0700);
	snprintf(path, sizeof(path), SCRIPT_DIR "/%u.bt", id);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) != 0 || pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
		int e = errno;

		snprintf(err, err_len, "cannot write %s or make its pipes: %s", path, strerror(e));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, err_len, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) { /* the child: bpftrace at normal priority, ended with the agent */
		struct sched_param sp = {.sched_priority = 0};
		sigset_t none;
		int null = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		sched_setscheduler(0, SCHED_OTHER, &sp);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null >= 0)
			dup2(null, 0);
		dup2(out[1], 1);
		dup2(errp[1], 2);
		execl(bpftrace, "bpftrace", "-B", "none", path, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(errp[1]);
	s->pid = pid;
	s->fds[0] = out[0];
	s->fds[1] = errp[0];
	if (pthread_create(&s->thread, NULL, script_main, s)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(out[0]);
		close(errp[0]);
		snprintf(err, err_len, "cannot start a thread for it");
		pthread_mutex_lock(&lock);
		s->used = 0;
		pthread_mutex_unlock(&lock);
		return -EAGAIN;
	}
	pthread_detach(s->thread);
	return pid;
fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	unlink(path);
	pthread_mutex_lock(&lock);
	s->used = 0;
	pthread_mutex_unlock(&lock);
	return -EIO;
}

void scripts_stop_all(void)
{
	pthread_mutex_lock(&lock);
	for (int i = 0; i < PVAG_MAX_SCRIPTS; i++) {
		struct script *s = &scripts[i];

		if (!s->used || s->stopping || s->pid <= 0)
			continue;
		s->stopping = 1;
		clock_gettime(CLOCK_MONOTONIC, &s->stop_at);
		kill(s->pid, SIGTERM);
	}
	pthread_mutex_unlock(&lock);
}
