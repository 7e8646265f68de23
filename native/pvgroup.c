/* pvgroup PROGRAM [ARG...]: run PROGRAM as the leader of a process group of its
 * own, in the caller's session, with SIGTTOU blocked. pvrun starts its helper
 * through it (src/vm/helper.ts): out of the terminal's foreground group from
 * its first instruction, a Ctrl-C or a hang-up there reaches QEMU alone, and in
 * QEMU's session the helper shares QEMU's scheduling group (autogroup). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sigset_t ttou;

	if (argc < 2) {
		fputs("usage: pvgroup PROGRAM [ARG...]\n", stderr);
		return 2;
	}
	/* Failing (already a session leader), the program still runs: the group is a nicety. */
	if (setpgid(0, 0) != 0)
		perror("pvgroup: setpgid");
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, NULL);
	execv(argv[1], argv + 1);
	perror("pvgroup: exec");
	return 127;
}
