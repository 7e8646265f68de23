# Per 100 ms bin of one thread: switch-ins and on-CPU ms; prints bins that stand out. oncpu.py TRACE PID
import re,sys,collections
sw=re.compile(r'\[(\d+)\].* (\d+\.\d+): sched_switch: prev_comm=.*? prev_pid=(\d+) .*? ==> next_comm=.*? next_pid=(\d+)')
f,pid=sys.argv[1],sys.argv[2]
ins=collections.Counter(); on=collections.Counter(); t0=None; tin=None
for line in open(f,errors='replace'):
    if 'pid='+pid+' ' not in line: continue
    m=sw.search(line)
    if not m: continue
    t=float(m.group(2)); t0=t0 or t
    b=int((t-t0)*10)
    if m.group(4)==pid: ins[b]+=1; tin=t
    elif m.group(3)==pid and tin is not None: on[int((tin-t0)*10)]+=(t-tin)*1000; tin=None
for b in sorted(set(ins)|set(on)):
    print(f'{b/10:5.1f}s in={ins[b]:4d} on={on[b]:6.1f}ms')
