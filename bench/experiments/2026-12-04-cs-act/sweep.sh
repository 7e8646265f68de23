#!/bin/bash
# usage: sweep.sh REPS CONFIG... (plain nooc observe act act-nopay act-fifo)
cd "$(dirname "$0")"
reps=$1; shift
cmd() { echo "pvwork,uspin,-t,$1,-l,spin+spin-cs+mutex+pvcs,-w,1+10+50,-s,3;pvwork,klock,-t,$1,-s,3" | sed 's/spin,spin-cs,mutex,pvcs/spin,spin-cs,mutex,pvcs/'; }
for r in $(seq $reps); do
	for cfg in "$@"; do
		case $cfg in
		plain) out=$(timeout 500 node run.mjs 4 "$(cmd 4)" plain) ;;
		nooc) out=$(timeout 500 node run.mjs 2 "$(cmd 2)" plain) ;;
		observe) out=$(timeout 500 node run.mjs 4 "$(cmd 4)" pvrun --pv-cs observe) ;;
		act) out=$(timeout 500 node run.mjs 4 "$(cmd 4)" pvrun --pv-cs act --pv-log /tmp/act-$r.log) ;;
		act-nopay) out=$(timeout 500 node run.mjs 4 "$(cmd 4)" pvrun --pv-cs act --pv-cs-boost payback=0 --pv-log /tmp/actnp-$r.log) ;;
		esac
		echo "$out" | grep pvwork-result | sed "s/^/$r $cfg /"
	done
done
