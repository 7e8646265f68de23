#!/usr/bin/env bash
# Regenerate bpf/vmlinux.h from the BTF of the default guest kernel.
# Usage: bpf/gen-vmlinux-h.sh [path/to/vmlinuz]   (default: the cached image's kernel)
# Needs bpftool and the decompressor of the kernel's payload (lz4 for Debian's cloud kernel).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vmlinuz=${1:-$(node "$here/../dist/cli/main.js" image path | head -n 1)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Find the compressed payload inside the bzImage (as the kernel's scripts/extract-vmlinux does).
try() { # magic-as-printf-escape decompressor...
	local magic=$1; shift
	local off
	for off in $(LC_ALL=C grep -aboF "$(printf "$magic")" "$vmlinuz" | cut -d: -f1); do
		if tail -c "+$((off + 1))" "$vmlinuz" | "$@" > "$tmp/vmlinux" 2>/dev/null || [ -s "$tmp/vmlinux" ]; then
			if [ "$(head -c 4 "$tmp/vmlinux")" = "$(printf '\177ELF')" ]; then return 0; fi
		fi
	done
	return 1
}
try '\002!L\030' lz4 -dc || try '\037\213\010' gzip -dc || try '\375\067\172\130\132\000' xz -dc ||
	try '\050\265\057\375' zstd -dc || { echo "gen-vmlinux-h: no ELF payload found in $vmlinuz" >&2; exit 1; }
release=$(strings "$vmlinuz" | sed -n 's/^\([0-9][^ ]*\) (debian-kernel.*/\1/p' | head -1)
{
	printf '/* Pinned BTF dump of the default guest kernel (%s), made by bpf/gen-vmlinux-h.sh.\n' "${release:-unknown}"
	printf ' * CO-RE relocates field offsets at load time, so this header need not match the\n * running kernel exactly. See docs/bpf.md. */\n'
	bpftool btf dump file "$tmp/vmlinux" format c
} > "$here/vmlinux.h.new"
mv "$here/vmlinux.h.new" "$here/vmlinux.h"
echo "bpf/vmlinux.h regenerated from $vmlinuz"
