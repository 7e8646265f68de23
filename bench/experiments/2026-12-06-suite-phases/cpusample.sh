#!/bin/bash
# every 2 s: epoch busy-ticks total-ticks, until /tmp/cpusample.stop exists
out=${1:-/tmp/cpusample.txt}; : > $out
while [ ! -e /tmp/cpusample.stop ]; do
  read -r _ u n s i w q sq st _ < /proc/stat
  echo "$(date +%s) $((u+n+s+q+sq+st)) $((u+n+s+i+w+q+sq+st))" >> $out
  sleep 2
done
