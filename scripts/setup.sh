#!/usr/bin/env bash
# One-step, idempotent set-up: the Debian packages pvrun builds and runs with,
# then the npm packages from the committed lock file. A second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: C toolchain for the static agent, clang/llvm + libbpf for BPF;
# image: busybox-static, cpio; run: QEMU; tools: bpftool, lz4 (vmlinux.h refresh);
# the libvirt end-to-end test: libvirt's daemon, QEMU driver and virsh (scripts/libvirt.sh);
# the completion test: zsh; pvrun trace (bpf/trace/*.bt): bpftrace.
packages=(qemu-system-x86 clang llvm libbpf-dev libelf-dev zlib1g-dev libzstd-dev gcc make libc6-dev
	busybox-static cpio bpftool lz4 tmux ca-certificates zsh
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	bpftrace)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

# The image builder resolves the guest kernel with apt-cache: its lists must exist.
lists_ok=true
apt-cache show --no-all-versions linux-image-cloud-amd64 >/dev/null 2>&1 || lists_ok=false

export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ] || [ "$lists_ok" = false ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: need root to install Debian packages: ${missing[*]:-(apt lists)}" >&2
		exit 1
	fi
	echo "setup: apt-get update"
	apt-get update -q
	if [ ${#missing[@]} -gt 0 ]; then
		echo "setup: installing ${missing[*]}"
		apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
	fi
	apt-cache show --no-all-versions linux-image-cloud-amd64 >/dev/null ||
		{ echo "setup: apt has no linux-image-cloud-amd64: check /etc/apt/sources.list" >&2; exit 1; }
else
	echo "setup: ${#packages[@]} Debian packages already installed"
fi

# npm: reinstall only when the lock file changed since the last npm ci.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ "$(cat node_modules/.pvrun-lock-sum 2>/dev/null)" = "$lock_sum" ]; then
	echo "setup: npm packages up to date"
else
	echo "setup: npm ci"
	npm ci --no-audit --no-fund </dev/null
	# tap as installed loads every plugin, TypeScript's and mock's among them, into each test
	# process (~1.2 s of CPU each); it rebuilds with package.json's set by itself, but only
	# once the first run's processes have started with the full one.
	echo "setup: tap build (package.json's plugins)"
	npx tap build </dev/null
	echo "$lock_sum" > node_modules/.pvrun-lock-sum
fi
