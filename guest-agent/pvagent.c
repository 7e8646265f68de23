// pvagent: pvrun's guest agent. This first version only proves the guest
// toolchain (static C11 + libbpf) and reports its version; the hint channel
// (IVSHMEM mapping, virtio-serial protocol, BPF loading) lands on top of it.
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>

#ifndef PVAGENT_VERSION
#define PVAGENT_VERSION "0.0.0"
#endif

static void usage(FILE *out)
{
	fprintf(out, "usage: pvagent [--version | --help]\n");
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("pvagent %s (libbpf %u.%u)\n", PVAGENT_VERSION, libbpf_major_version(),
		       libbpf_minor_version());
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
