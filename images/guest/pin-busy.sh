#!/bin/sh
# pin-busy.sh [MASK] [SECONDS] [TAIL]: start a busy process, pin it with
# taskset to MASK (default 0x2 = vCPU 1), keep it SECONDS (default 4), stop it,
# wait TAIL seconds (default SECONDS) with nothing pinned. Prints one line at
# each step for the host to follow.
mask=${1:-0x2}
secs=${2:-4}
tail=${3:-$secs}
(while :; do :; done) &
pid=$!
sleep 1
taskset -p "$mask" "$pid" >/dev/null || { echo "pin-busy: taskset failed"; exit 1; }
echo "pin-busy: pinned $pid to $mask"
sleep "$secs"
kill "$pid"
wait "$pid" 2>/dev/null
echo "pin-busy: stopped $pid"
sleep "$tail"
echo "pin-busy: done"
