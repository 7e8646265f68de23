#!/bin/sh
# The guest side of `make demo`: a busy thread pinned to vCPU 1 and released,
# then the hint round trip measured from inside the guest.
sleep 1
/usr/share/pvrun/pin-busy.sh 0x2 3
pvhint wait 1 -n 200
