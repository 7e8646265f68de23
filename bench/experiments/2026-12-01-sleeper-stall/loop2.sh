#!/bin/bash
T=/sys/kernel/tracing
K=/root/.cache/pvrun/images/a00d55db21add88b/vmlinuz
echo 0 > $T/tracing_on; echo 100000 > $T/buffer_size_kb; echo > $T/trace
for e in sched/sched_switch sched/sched_wakeup sched/sched_migrate_task; do echo 1 > $T/events/$e/enable; done
for i in $(seq 1 ${N:-12}); do
  out=/tmp/hunt/h-$i.txt
  echo > $T/trace; echo 1 > $T/tracing_on
  timeout 120 node /work/main/dist/cli/main.js --pv-log /tmp/hunt/hlog-$i.jsonl -nodefaults -no-user-config -smp 4 -m 512 -kernel $K -initrd /tmp/hunt/hunt-initrd.img \
    -append "console=ttyS0 quiet panic=-1 tsc=reliable pvrun.run=sh,/hunt.sh" -display none -serial stdio -no-reboot < /dev/null 2>&1 | python3 /tmp/hunt/watch.py > $out
  echo 0 > $T/tracing_on
  echo "$i: $(grep -a 'hunt: p99' $out) $(grep -a 'longest gap' $out)"
  if grep -aq 'longest gap' $out; then cat $T/trace > /tmp/hunt/host-$i.trace; break; fi
done
for e in sched/sched_switch sched/sched_wakeup sched/sched_migrate_task; do echo 0 > $T/events/$e/enable; done
echo > $T/trace; echo 1410 > $T/buffer_size_kb
