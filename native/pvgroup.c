/* pvgroup PROGRAM [ARG...]: run PROGRAM as the leader of a process group of its
 * own, in the caller's session. pvrun starts its helper through it
 * (src/vm/helper.ts): out of the terminal's foreground group from its first
 * instruction, a Ctrl-C or a hang-up there reaches QEMU alone, and in QEMU's
 * session the helper shares QEMU's scheduling group (autogroup). */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs("usage: pvgroup PROGRAM [ARG...]\n", stderr);
		return 2;
	}
	/* Failing (already a session leader), the program still runs: the group is a nicety. */
	if (setpgid(0, 0) != 0)
		perror("pvgroup: setpgid");
	execv(argv[1], argv + 1);
	perror("pvgroup: exec");
	return 127;
}
