#!/bin/sh
# pin-loop.sh [MASK] [ON] [OFF]: a busy process, pinned with taskset to MASK
# (default 0x2 = vCPU 1) for ON seconds (default 2), then let go (every vCPU)
# for OFF seconds (default 1), again and again: hints that keep coming, for
# tests that look for a new one after an event (a pause, a reboot, a restore,
# an operator's pin). One line at each step for the host to follow.
mask=${1:-0x2}
on=${2:-2}
off=${3:-1}
(while :; do :; done) &
pid=$!
trap 'kill $pid; exit 0' TERM INT
while :; do
	taskset -p "$mask" "$pid" >/dev/null || { echo "pin-loop: taskset failed"; exit 1; }
	echo "pin-loop: pinned $pid to $mask"
	sleep "$on"
	taskset -p 0xffffffff "$pid" >/dev/null
	echo "pin-loop: let go of $pid"
	sleep "$off"
done
