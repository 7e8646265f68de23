#!/bin/bash
# A/B: act with the default boost end vs a boost polled every N us; uspin spin-cs and pvcs, 1 and 10 us, alone (4 vCPUs).
cd "$(dirname "$0")/../2026-12-04-cs-act"
for r in 1 2 3; do
  for poll in 0 50 20; do
    if [ $poll = 0 ]; then unset PV_BOOST_POLL_US; else export PV_BOOST_POLL_US=$poll; fi
    rm -f /tmp/ab.log
    out=$(node run.mjs 4 'pvwork,uspin,-t,4,-l,spin-cs+pvcs,-w,1+10,-s,3' pvrun --pv-cs act --pv-log /tmp/ab.log 2>&1)
    res=$(echo "$out" | grep pvwork-result | head -1)
    python3 - "$r" "$poll" "$res" <<'PY'
import json,sys
r,poll,line=sys.argv[1:4]
d=json.loads(line[line.index('{'):])
ev=[json.loads(l) for l in open('/tmp/ab.log') if '"event":"cs"' in l][-1]
b=sum(v.get('boosts',0) for v in ev['vcpus']); bm=sum(v.get('boostedMs',0) for v in ev['vcpus'])
print(r,poll,' '.join(f"{x['lock']}-{x['workUs']}:{x['opsPerSec']/1000:.0f}k/st{x['stalledMsPerSec']:.0f}" for x in d['runs']), f"boosts {b} boostedMs {bm:.0f} wakeups {ev.get('bpf',{}).get('wakeups')} threadUs {ev.get('bpf',{}).get('threadUs')}")
PY
  done
done
