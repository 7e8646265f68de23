#!/bin/bash
# A/B: the governor's hold ends at 0 (A) or at a quarter of the burst (B); 3 hogs beside; stale3 per run.
cd "$(dirname "$0")/../../.."
for rep in 1 2 3; do
  for v in A B; do
    if [ $v = A ]; then sed -i 's|this.resumeAtMs = burstCpuMs / 4;|this.resumeAtMs = 0;|' dist/util/cpu-governor.js; else sed -i 's|this.resumeAtMs = 0;|this.resumeAtMs = burstCpuMs / 4;|' dist/util/cpu-governor.js; fi
    pids=(); for i in 1 2 3; do (while :; do :; done) & pids+=($!); done
    out=$(timeout 200 node bench/experiments/2026-12-06-flood-stall/flood-then-wait.mjs 2>&1)
    kill "${pids[@]}"
    g=$(echo "$out" | grep '^guest' | grep -o 'n=[01] timeouts=[01] pin_p50_us=[0-9.]*')
    st=$(echo "$out" | grep -c '"stall"'); su=$(echo "$out" | grep -c 'hint-summary'); h=$(echo "$out" | grep -o '"cpuHolds":[0-9]*')
    echo "rep $rep $v: $g stalls=$st summaries=$su $h"
  done
done
sed -i 's|this.resumeAtMs = 0;|this.resumeAtMs = burstCpuMs / 4;|' dist/util/cpu-governor.js
