#!/usr/bin/env bash
# libvirt test harness: `up` makes a local qemu:///system usable on a machine
# without systemd (Debian packages, the libvirt-qemu user and group, virtlogd
# and libvirtd as daemons, pvrun runnable by libvirt-qemu); `down` undoes
# what `up` did and nothing else. Both are idempotent and print one line per
# step. What `up` created is recorded in $state (pid files, markers), so that
# `down` never stops a daemon or removes a user it did not start or create.
#
#   scripts/libvirt.sh up      # then: virsh -c qemu:///system ...
#   scripts/libvirt.sh down
#   scripts/libvirt.sh status  # what is running and what the harness owns
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

state=${PVRUN_LIBVIRT_STATE:-/run/pvrun-libvirt}
uri=qemu:///system
qemu_user=libvirt-qemu
packages=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)
# Where libvirtd and virtlogd write their pid files by default (running as root).
libvirtd_pidfile=/run/libvirtd.pid
virtlogd_pidfile=/run/virtlogd.pid
wait_s=${PVRUN_LIBVIRT_WAIT:-30}

say() { echo "libvirt: $*"; }
die() { echo "libvirt: $*" >&2; exit 1; }

# pid_alive FILE COMM: the pid in FILE is a live process named COMM (not a reused pid).
pid_alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

virsh_answers() { virsh -c "$uri" version >/dev/null 2>&1; }

install_packages() {
	local missing=() p status
	for p in "${packages[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		[ "$status" = "install ok installed" ] || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "packages installed (${packages[*]})"
		return
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Recommends would pull in LVM, swtpm, other hypervisors' drivers: none is needed here.
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null ||
		{ apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null; }
}

# Debian's libvirt-daemon-system would create them; it needs systemd, so do it here.
ensure_user() {
	if ! getent group "$qemu_user" >/dev/null; then
		groupadd --system "$qemu_user"
		touch "$state/created-group"
		say "created group $qemu_user"
	fi
	if ! getent passwd "$qemu_user" >/dev/null; then
		useradd --system --gid "$qemu_user" --home-dir /var/lib/libvirt --no-create-home \
			--shell /usr/sbin/nologin --comment 'Libvirt Qemu' "$qemu_user"
		touch "$state/created-user"
		say "created user $qemu_user"
	fi
}

# libvirt probes an emulator with CAP_DAC_OVERRIDE, so the probe finds KVM even
# where /dev/kvm is root-only (0600 here, no udev); but it checks the cached
# result against /dev/kvm's access for libvirt-qemu, finds them different and
# probes again at every lookup (seconds each, several per define/start). Give
# /dev/kvm Debian's udev setting (root:kvm 0660, libvirt-qemu in kvm), as
# libvirt-daemon-system expects; `down` restores owner and mode. The test's
# domains are <domain type='qemu'> (TCG) all the same.
ensure_kvm_access() {
	[ -c /dev/kvm ] || return 0
	if setpriv --reuid="$qemu_user" --regid="$qemu_user" --init-groups test -r /dev/kvm -a -w /dev/kvm; then
		say "$qemu_user can open /dev/kvm"
		return
	fi
	if ! getent group kvm >/dev/null; then
		groupadd --system kvm
		touch "$state/created-kvm-group"
		say "created group kvm"
	fi
	if ! id -nG "$qemu_user" | tr ' ' '\n' | grep -qx kvm; then
		usermod -a -G kvm "$qemu_user"
		touch "$state/added-to-kvm"
	fi
	[ -e "$state/kvm-mode" ] || stat -c '%u:%g %a' /dev/kvm >"$state/kvm-mode"
	chgrp kvm /dev/kvm
	chmod 0660 /dev/kvm
	say "/dev/kvm: root:kvm 0660 (was $(cat "$state/kvm-mode")), $qemu_user in group kvm"
}

restore_kvm_access() {
	local owner mode
	if [ -e "$state/kvm-mode" ] && [ -c /dev/kvm ]; then
		read -r owner mode <"$state/kvm-mode"
		chown "$owner" /dev/kvm && chmod "$mode" /dev/kvm && say "/dev/kvm: back to $owner $mode"
	fi
	if [ -e "$state/added-to-kvm" ] && [ ! -e "$state/created-user" ]; then
		gpasswd -d "$qemu_user" kvm >/dev/null 2>&1 || true
	fi
	if [ -e "$state/created-kvm-group" ]; then
		groupdel kvm 2>/dev/null || true
		say "removed group kvm"
	fi
}

# libvirt runs the emulator (pvrun) as libvirt-qemu: every directory on the way
# to node, the checkout and its dist/ and node_modules must let that user in.
check_pvrun_access() {
	local d=$repo
	while [ "$d" != / ]; do
		setpriv --reuid="$qemu_user" --regid="$qemu_user" --clear-groups test -x "$d" ||
			die "$qemu_user cannot enter $d (mode $(stat -c %a "$d")): libvirt runs pvrun as that user; chmod o+x $d"
		d=$(dirname "$d")
	done
	[ -f dist/cli/main.js ] || die "dist/cli/main.js is missing: run make build"
	local out
	out=$(setpriv --reuid="$qemu_user" --regid="$qemu_user" --clear-groups "$repo/bin/pvrun" --version 2>&1) ||
		die "$qemu_user cannot run $repo/bin/pvrun: $out"
	say "$qemu_user can run bin/pvrun (pvrun $out)"
}

# Directories Debian's libvirt-daemon-system would create; libvirtd and virtlogd
# create the rest of their state under them. Those missing before the harness
# first starts a daemon are recorded and removed by `down` (with whatever the
# daemons put there: logs, the capability cache, the state of defined domains).
libvirt_dirs=(/var/log/libvirt /var/lib/libvirt /var/cache/libvirt /run/libvirt)

note_new_dirs() {
	local d
	[ -e "$state/created-dirs" ] && return
	: >"$state/created-dirs.tmp"
	for d in "${libvirt_dirs[@]}"; do
		[ -e "$d" ] || echo "$d" >>"$state/created-dirs.tmp"
	done
	# libvirtd adds subdirectories of /etc/libvirt (qemu/ for persistent domains, ...).
	ls -A /etc/libvirt >"$state/etc-before" 2>/dev/null || true
	mv "$state/created-dirs.tmp" "$state/created-dirs"
	mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/images
	chmod 0711 /var/lib/libvirt/images
}

remove_new_dirs() {
	local d
	if [ -e "$state/created-dirs" ]; then
		while read -r d; do
			[ -n "$d" ] && rm -rf -- "$d" && say "removed $d"
		done <"$state/created-dirs"
	fi
	if [ -e "$state/etc-before" ] && [ -d /etc/libvirt ]; then
		for d in $(ls -A /etc/libvirt); do
			grep -qxF -- "$d" "$state/etc-before" || { rm -rf -- "/etc/libvirt/$d"; say "removed /etc/libvirt/$d"; }
		done
	fi
}

# start_daemon NAME PIDFILE: start NAME -d unless it runs; record it as ours if we started it.
start_daemon() {
	local name=$1 pidfile=$2 i
	if pid_alive "$pidfile" "$name"; then
		if pid_alive "$state/$name.pid" "$name"; then say "$name running (pid $(cat "$pidfile"), started by this harness)"
		else say "$name already running (pid $(cat "$pidfile")), not ours: left alone"; fi
		return
	fi
	# Warnings and errors (or, with PVRUN_LIBVIRT_DEBUG=1, the QEMU driver's debug
	# messages) go to /var/log/libvirt/NAME.log: without systemd nothing else keeps them.
	local filters="" level=3
	if [ "${PVRUN_LIBVIRT_DEBUG:-0}" = 1 ]; then
		level=1
		filters="3:rpc 3:event 3:util.object 3:util.threadjob 1:qemu 1:util.command 1:security 3:util 3:conf"
	fi
	LIBVIRT_LOG_OUTPUTS="$level:file:/var/log/libvirt/$name.log" LIBVIRT_LOG_FILTERS="$filters" \
		"$name" -d -p "$pidfile"
	for ((i = 0; i < 50; i++)); do
		pid_alive "$pidfile" "$name" && break
		sleep 0.1
	done
	pid_alive "$pidfile" "$name" || die "$name did not start (no live pid in $pidfile)"
	cp "$pidfile" "$state/$name.pid"
	say "started $name (pid $(cat "$pidfile"))"
}

# stop_daemon NAME: stop NAME if this harness started it (TERM, then KILL after 10 s).
stop_daemon() {
	local name=$1 pid i
	if ! pid_alive "$state/$name.pid" "$name"; then
		[ -e "$state/$name.pid" ] && say "$name (started by this harness) already gone"
		rm -f "$state/$name.pid"
		return
	fi
	pid=$(cat "$state/$name.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		[ -d "/proc/$pid" ] || break
		sleep 0.1
	done
	if [ -d "/proc/$pid" ]; then
		say "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$state/$name.pid"
	say "stopped $name (pid $pid)"
}

up() {
	[ "$(id -u)" -eq 0 ] || die "run as root: libvirtd (qemu:///system) runs as root"
	mkdir -p "$state"
	install_packages
	ensure_user
	ensure_kvm_access
	check_pvrun_access
	pid_alive "$libvirtd_pidfile" libvirtd || note_new_dirs
	start_daemon virtlogd "$virtlogd_pidfile"
	start_daemon libvirtd "$libvirtd_pidfile"
	local start=$SECONDS
	until virsh_answers; do
		((SECONDS - start < wait_s)) || die "virsh -c $uri version did not answer within ${wait_s} s"
		pid_alive "$libvirtd_pidfile" libvirtd || die "libvirtd exited; see its messages above"
		sleep 0.2
	done
	say "$uri answers: $(virsh -c "$uri" version 2>/dev/null | grep -m1 'Running hypervisor' || echo up)"
}

down() {
	if [ ! -d "$state" ]; then
		say "nothing to undo ($state does not exist)"
		return
	fi
	# Domains outlive libvirtd; those of the libvirtd this harness started go with it.
	if pid_alive "$state/libvirtd.pid" libvirtd && virsh_answers; then
		local d
		for d in $(virsh -c "$uri" list --name 2>/dev/null); do
			virsh -c "$uri" destroy "$d" >/dev/null 2>&1 && say "destroyed domain $d"
		done
		for d in $(virsh -c "$uri" list --all --name 2>/dev/null); do
			virsh -c "$uri" undefine "$d" >/dev/null 2>&1 && say "undefined domain $d"
		done
	fi
	stop_daemon libvirtd
	stop_daemon virtlogd
	# Only once no daemon of ours can write there any more.
	if pid_alive "$libvirtd_pidfile" libvirtd || pid_alive "$virtlogd_pidfile" virtlogd; then
		say "a libvirtd/virtlogd not started by this harness runs: its directories stay"
	else
		remove_new_dirs
	fi
	restore_kvm_access
	if [ -e "$state/created-user" ]; then
		userdel "$qemu_user" 2>/dev/null || true
		say "removed user $qemu_user"
	fi
	if [ -e "$state/created-group" ]; then
		groupdel "$qemu_user" 2>/dev/null || true
		say "removed group $qemu_user"
	fi
	rm -rf "$state"
	say "down (Debian packages stay installed)"
}

status() {
	local name pidfile
	for name in virtlogd libvirtd; do
		pidfile=/run/$name.pid
		if pid_alive "$pidfile" "$name"; then
			if pid_alive "$state/$name.pid" "$name"; then echo "$name: running, pid $(cat "$pidfile"), started by this harness"
			else echo "$name: running, pid $(cat "$pidfile"), not started by this harness"; fi
		else echo "$name: not running"; fi
	done
	if virsh_answers; then echo "$uri: answers"; else echo "$uri: does not answer"; fi
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
