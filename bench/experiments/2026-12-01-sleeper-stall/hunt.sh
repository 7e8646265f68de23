#!/bin/sh
# Sleeper stall hunt: guest-side sched trace around the longest gap of the sleeper.
T=/sys/kernel/tracing
sleep 3
echo 8192 > $T/buffer_size_kb
echo > $T/trace
for e in sched/sched_switch sched/sched_wakeup sched/sched_wakeup_new sched/sched_migrate_task sched/sched_process_exec sched/sched_process_exit sched/sched_process_fork timer/hrtimer_start timer/hrtimer_expire_entry timer/hrtimer_cancel irq_vectors/reschedule_entry irq_vectors/local_timer_entry irq_vectors/call_function_entry irq_vectors/call_function_single_entry; do
  echo 1 > $T/events/$e/enable || echo "hunt: no $e"
done
echo 1 > $T/tracing_on
pvwork sleeper -c 0 -p 1000 -s 1 -b 3
echo MEASURE > $T/trace_marker
echo "hunt: measure"
pvwork sleeper -c 0 -p 1000 -s 10 -b 3 > /tmp/res
echo 0 > $T/tracing_on
cat /tmp/res
p99=$(sed 's/.*"p99Us":\([0-9.]*\).*/\1/' /tmp/res)
echo "hunt: p99=$p99"
if [ "${p99%.*}" -gt "${HUNT_MIN:-40000}" ]; then
  cat $T/trace > /tmp/trace
  echo "hunt: lines $(wc -l < /tmp/trace)"
  # The sleeper: the pid of the last 'pvwork' exec; its longest gap between switch-ins.
  grep -E "sched_process_exec|MEASURE" /tmp/trace | sed "s/^/E /"
  awk -f /gap.awk /tmp/trace /tmp/trace
fi
