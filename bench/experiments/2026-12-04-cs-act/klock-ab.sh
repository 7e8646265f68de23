#!/bin/bash
cd "$(dirname "$0")"
reps=$1
cmd="pvwork,klock,-t,4,-s,3;pvwork,uspin,-t,4,-l,spin,-w,10,-s,3"
for r in $(seq $reps); do
	for cfg in observe act act-nopay act-tiny; do
		case $cfg in
		observe) out=$(timeout 300 node run.mjs 4 "$cmd" pvrun --pv-cs observe) ;;
		act) out=$(timeout 300 node run.mjs 4 "$cmd" pvrun --pv-cs act --pv-log /tmp/kab-act-$r.log) ;;
		act-nopay) out=$(timeout 300 node run.mjs 4 "$cmd" pvrun --pv-cs act --pv-cs-boost payback=0 --pv-log /tmp/kab-np-$r.log) ;;
		act-tiny) out=$(timeout 300 node run.mjs 4 "$cmd" pvrun --pv-cs act --pv-cs-boost max=10us,payback=0 --pv-log /tmp/kab-tiny-$r.log) ;;
		esac
		echo "$out" | grep pvwork-result | sed "s/^/$r $cfg /"
	done
done
