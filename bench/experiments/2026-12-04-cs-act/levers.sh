#!/bin/bash
# Alternating boots: plain, observe, act (SCHED_FIFO lever: this checkout), act with the nice lever (/tmp/var-nice)
cd "$(dirname "$0")"
reps=$1
cmd="pvwork,uspin,-t,4,-l,spin-cs+pvcs,-w,10+50,-s,3;pvwork,klock,-t,4,-s,3"
for r in $(seq $reps); do
	for cfg in plain observe fifo nice; do
		case $cfg in
		plain) out=$(timeout 500 node run.mjs 4 "$cmd" plain) ;;
		observe) out=$(timeout 500 node run.mjs 4 "$cmd" pvrun --pv-cs observe) ;;
		fifo) out=$(timeout 500 node run.mjs 4 "$cmd" pvrun --pv-cs act --pv-log /tmp/lev-fifo-$r.log) ;;
		nice) out=$(PVRUN_ROOT=/tmp/var-nice timeout 500 node /tmp/var-nice/bench/experiments/2026-12-04-cs-act/run.mjs 4 "$cmd" pvrun --pv-cs act --pv-log /tmp/lev-nice-$r.log) ;;
		esac
		echo "$out" | grep pvwork-result | sed "s/^/$r $cfg /"
	done
done
