#!/bin/bash
# Sleeper-only matrices until pvrun's p99 exceeds 100 ms in one rep (at most 3 matrices).
cd /work/main
for i in 1 2 3; do
  out=/tmp/s7/hunt-$i
  date +%T.%N > $out.start
  node dist/cli/main.js bench --scenarios a --workloads sleeper --reps 2 --seconds 10 --out $out > $out.log 2>&1
  if python3 -c "
import json,sys
d=json.load(open('$out/matrix.json'))
sys.exit(0 if any(s['config']=='pvrun' and not s['warmup'] and s['values']['p99Us']>100000 for s in d['samples']) else 1)"; then echo "BAD in $i"; break; fi
done
echo hunt-done
