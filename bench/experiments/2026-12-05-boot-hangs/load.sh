#!/bin/bash
# quick bench in a loop until /tmp/hang/stop exists
i=0
while [ ! -e /tmp/hang/stop ]; do
  rm -rf /tmp/hang/bench-out
  node "$(dirname "$0")/../../../dist/cli/main.js" bench --quick --out /tmp/hang/bench-out > /tmp/hang/bench-$i.log 2>&1
  echo "$(date -Is) bench $i rc=$?" >> /tmp/hang/results.txt
  i=$((i+1))
done
