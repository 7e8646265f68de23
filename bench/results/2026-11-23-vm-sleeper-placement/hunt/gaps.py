# Per "CPU 0/TCG" thread (pvrun VMs): intervals > 50 ms between its switch-out and next switch-in, or runs > 50 ms.
import re,sys,collections
sw=re.compile(r'\[(\d+)\].* (\d+\.\d+): sched_switch: prev_comm=(.*?) prev_pid=(\d+) prev_prio=(\d+) prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)')
want=sys.argv[2] if len(sys.argv)>2 else 'CPU 0/TCG'
last_out={}; last_in={}; first={}
cpu_runs=collections.defaultdict(list)
for line in open(sys.argv[1],errors='replace'):
    if 'sched_switch' not in line or want not in line: continue
    m=sw.search(line)
    if not m: continue
    cpu,t,pc,pp,_,st,nc,np=m.groups(); t=float(t)
    if pc==want:
        pp=int(pp)
        if pp in last_in and t-last_in[pp]>0.05: print(f'{pp} RUN {t-last_in[pp]:.3f}s ending {t:.3f} on cpu{cpu}')
        last_out[pp]=(t,st)
    if nc==want:
        np=int(np); first.setdefault(np,t)
        if np in last_out and t-last_out[np][0]>0.05: print(f'{np} OFF {t-last_out[np][0]:.3f}s state={last_out[np][1]} until {t:.3f} on cpu{cpu}')
        last_in[np]=t
for p,t in first.items(): print('thread',p,'first',t,'last',last_out.get(p))
