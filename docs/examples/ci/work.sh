#!/bin/sh
# A stand-in for a project's own benchmark: checksum a 1 MiB file ROUNDS times and
# print how many checksums a second the guest made, and the time taken.
rounds=${1:-40}
work=${WORK:-1}
dd if=/dev/zero of=/tmp/blob bs=64k count=16 2>/dev/null
read -r start _ </proc/uptime
i=0
while [ "$i" -lt "$rounds" ]; do
	j=0
	while [ "$j" -lt "$work" ]; do
		md5sum /tmp/blob >/dev/null
		j=$((j + 1))
	done
	i=$((i + 1))
done
read -r end _ </proc/uptime
awk -v n="$rounds" -v s="$start" -v e="$end" 'BEGIN { t = e - s; if (t <= 0) t = 0.01; printf "checksums=%.1f/s seconds=%.2f\n", n / t, t }'
