# Three busy loops on CPU 1; from CPU 0, loop A is walked through a sequence of steps 300 times a
# second for 5 s. Steps: fifo (SCHED_FIFO 1, held 50 us), idle (SCHED_IDLE, held 150 us), other
# (SCHED_OTHER), nice19 (nice 19, held 150 us), nice0; "none" changes nothing. Prints how many of
# A's load-average samples (se.avg.load_avg, one per 20 walks) read over 10^6, their median, and
# the three loops' shares of CPU 1.
# usage: python3 seq.py STEP,STEP,...   (root)
import os, re, subprocess, sys, time

seq = sys.argv[1].split(',')
os.sched_setaffinity(0, {0})
procs = [subprocess.Popen(['taskset', '-c', '1', 'sh', '-c', 'while :; do :; done']) for _ in range(3)]
time.sleep(0.5)
a = procs[0].pid
cpu = lambda p: int(open(f'/proc/{p.pid}/schedstat').read().split()[0])
policies = {'fifo': (os.SCHED_FIFO, 1, 50e-6), 'idle': (os.SCHED_IDLE, 0, 150e-6), 'other': (os.SCHED_OTHER, 0, 0)}
c0 = [cpu(p) for p in procs]
t0 = time.time()
loads, n = [], 0
try:
    while time.time() - t0 < 5:
        for step in seq:
            hold = 0
            if step in policies:
                pol, prio, hold = policies[step]
                os.sched_setscheduler(a, pol, os.sched_param(prio))
            elif step.startswith('nice'):
                os.setpriority(os.PRIO_PROCESS, a, int(step[4:]))
                hold = 150e-6 if step != 'nice0' else 0
            t = time.perf_counter()
            while time.perf_counter() - t < hold:
                pass
        n += 1
        if n % 20 == 0:
            loads.append(float(re.search(r'se.avg.load_avg\s*:\s*(\d+)', open(f'/proc/{a}/sched').read()).group(1)))
        time.sleep(1 / 300)
    wall = time.time() - t0
    shares = [round(100 * (cpu(p) - c) / 1e9 / wall, 1) for p, c in zip(procs, c0)]
    loads.sort()
    print(sys.argv[1], 'load average over 10^6:', sum(x > 1e6 for x in loads), 'of', len(loads), 'median', loads[len(loads) // 2] if loads else None, 'shares %', shares)
finally:
    for p in procs:
        p.kill()
