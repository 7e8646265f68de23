#!/bin/sh
T=/sys/kernel/tracing
sleep 3
echo 8192 > $T/buffer_size_kb
echo > $T/trace
echo 1 > $T/events/sched/sched_switch/enable
echo 1 > $T/events/sched/sched_migrate_task/enable
echo 1 > $T/tracing_on
pvwork poll -c 0 -s 1 -b 3
echo MEASURE > $T/trace_marker
pvwork poll -c 0 -s 10 -b 3
echo 0 > $T/tracing_on
echo "hunt: vcpu0 switches"
grep -E '\[000\]' $T/trace | grep -A0 sched_switch | awk '{print "S", $4, $0}' | sed -n '1,0p'
# the longest times the poller (pid of last pvwork exec's main) was off vCPU 0, with who ran
awk 'index($0,"MEASURE"){m=1} m && index($0,"[000]") && index($0,"sched_switch") {
  t=$4+0; if (match($0,/prev_comm=pvwork prev_pid=[0-9]+/) && prev_out==0 && index($0,"prev_state=R")) {}
  print "S " $0 }' $T/trace | cut -c1-230 > /tmp/sw
wc -l < /tmp/sw
awk '{ for(i=1;i<=NF;i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) t=$i+0;
  if (match($0,/next_comm=[^ ]+ next_pid=[0-9]+/)) nxt=substr($0,RSTART,RLENGTH);
  if (last!="") { d=t-lt; if (d>0.001 && last !~ /next_pid=138$/) printf "GAP %.1f ms ran %s from %.6f\n", d*1000, last, lt }
  last=nxt; lt=t }' /tmp/sw | sort -t' ' -k2 -rn | head -15
