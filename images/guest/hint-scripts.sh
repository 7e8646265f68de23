#!/bin/sh
# The guest side of test/e2e/hint-scripts.test.ts, one phase per line read from the console:
# `spin S` runs a process called spin for S seconds (docs/examples/hint-scripts/pin-by-name.bt
# gives it vCPU 1); `phases S` runs `pvwork phases` for S seconds: 100 ms phases of busy work
# and as long idle (phase-uprobe.bt gives it vCPU 1 during each phase); `end` ends.
printf '#!/bin/sh\nwhile :; do :; done\n' >/tmp/spin && chmod +x /tmp/spin
echo "hint-scripts: ready"
while read -r what secs; do
	case "$what" in
	spin)
		/tmp/spin &
		pid=$!
		sleep "$secs"
		kill "$pid"
		wait "$pid"
		echo "hint-scripts: spin done"
		;;
	phases)
		pvwork phases -w 100000 -s "$secs" >/dev/null
		echo "hint-scripts: phases done"
		;;
	end) break ;;
	esac
done
