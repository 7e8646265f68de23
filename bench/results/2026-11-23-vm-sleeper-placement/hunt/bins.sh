#!/bin/bash
# Switch-ins of a thread per 0.5 s since its first one: bins.sh TRACE PID
f=$1; p=$2
grep -a "next_pid=$p " $f | awk '{for(i=1;i<=NF;i++) if($i ~ /^[0-9]+\.[0-9]+:$/){t=substr($i,1,length($i)-1); if(!t0) t0=t; b=int((t-t0)*2)/2; c[b]++}} END{for(k in c) print k, c[k]}' | sort -n | tr '\n' ' '; echo
