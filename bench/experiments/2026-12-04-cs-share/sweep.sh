#!/bin/bash
# usage: sweep.sh REPS WORK_US — every lock and configuration, rotating, REPS times
cd "$(dirname "$0")"
for r in $(seq "$1"); do
	for lock in spin-cs pvcs; do
		for cfg in plain act act-pay100 act-pay0; do
			case $cfg in
			plain) node share.mjs $lock "$2" 8 plain ;;
			act) node share.mjs $lock "$2" 8 pvrun --pv-cs act ;;
			act-pay100) node share.mjs $lock "$2" 8 pvrun --pv-cs act --pv-cs-boost payback=100% ;;
			act-pay0) node share.mjs $lock "$2" 8 pvrun --pv-cs act --pv-cs-boost payback=0% ;;
			esac
		done
	done
done
