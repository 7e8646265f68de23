#!/bin/bash
# Sleeper-only matrices with host sched events in an in-kernel buffer (no reader while a VM runs);
# after each pvrun boot the buffer is copied out, then cleared. Stops after the first matrix with a pvrun rep over 100 ms.
T=/sys/kernel/tracing
cd /work/main
echo 0 > $T/tracing_on; echo 150000 > $T/buffer_size_kb; echo > $T/trace
echo 1 > $T/events/sched/sched_switch/enable; echo 1 > $T/events/sched/sched_wakeup/enable
for i in 1 2 3; do
  out=/tmp/s7/h2-$i; rm -rf $out; mkdir -p $out
  echo 1 > $T/tracing_on
  node dist/cli/main.js bench --scenarios a --workloads sleeper --reps 2 --seconds 10 --out $out > $out.log 2>&1 &
  pid=$!; seen=0
  while kill -0 $pid 2>/dev/null; do
    n=$(grep -c "pvrun: 1 results" $out.log)
    if [ "$n" -gt "$seen" ]; then
      seen=$n; echo 0 > $T/tracing_on; cat $T/trace > $out/trace-pvrun-$n.txt; echo > $T/trace; echo 1 > $T/tracing_on
    fi
    sleep 0.2
  done
  echo 0 > $T/tracing_on; echo > $T/trace
  if python3 -c "
import json,sys
d=json.load(open('$out/matrix.json'))
sys.exit(0 if any(s['config']=='pvrun' and not s['warmup'] and s['values']['p99Us']>100000 for s in d['samples']) else 1)"; then echo "BAD in $i"; break; fi
done
echo 0 > $T/events/sched/sched_switch/enable; echo 0 > $T/events/sched/sched_wakeup/enable; echo 1410 > $T/buffer_size_kb
echo hunt-done
