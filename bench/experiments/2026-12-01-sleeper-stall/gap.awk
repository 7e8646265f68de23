# pass 1: find sleeper pid (main thread of last pvwork exec: filename=/usr/bin/pvwork ... pid=N) after MEASURE, and largest gap
function ts(line,  m) { if (match(line, /[0-9]+\.[0-9]+: /)) return substr(line, RSTART, RLENGTH-2)+0; return -1 }
FNR==NR {
  if (index($0, "MEASURE")) measure=1
  if (measure && index($0, "sched_process_exec") && index($0, "pvwork")) { if (match($0, /pid=[0-9]+/)) sl=substr($0, RSTART+4, RLENGTH-4); }
  if (sl != "" && index($0, "sched_switch") && index($0, "next_pid=" sl " ")) { t=ts($0); if (last>0 && t-last>gap) {gap=t-last; g0=last; g1=t}; last=t }
  next
}
FNR==1 { printf "hunt: sleeper %s, longest gap %.1f ms from %.6f to %.6f\n", sl, gap*1000, g0, g1 }
{ t=ts($0); if (t >= g0-0.005 && t <= g1+0.002) print "T " $0 }
