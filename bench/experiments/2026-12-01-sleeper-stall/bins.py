import re,sys,collections
sw=re.compile(r'\[(\d+)\]\s+\S+\s+(\d+\.\d+): sched_switch: prev_comm=(.*?) prev_pid=(\d+) prev_prio=(\d+) prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+) next_prio=(\d+)')
f=sys.argv[1]; t0=float(sys.argv[2]); t1=float(sys.argv[3]); binw=float(sys.argv[4]) if len(sys.argv)>4 else 0.02
names={}
cur={}  # cpu -> (pid, since)
acc=collections.defaultdict(lambda: collections.Counter())  # (bin,cpu) -> pid -> seconds
def add(cpu,pid,a,b):
    a=max(a,t0); b=min(b,t1)
    while a<b:
        bi=int((a-t0)/binw+1e-9); e=min(b,t0+(bi+1)*binw)
        if e<=a: e=min(b,a+1e-7)
        acc[(bi,cpu)][pid]+=e-a; a=e
for line in open(f,errors='replace'):
    m=sw.search(line)
    if not m: continue
    cpu=int(m.group(1)); t=float(m.group(2))
    if t>t1+1: break
    names[m.group(4)]=m.group(3); names[m.group(8)]=m.group(7)
    if cpu in cur: add(cpu,cur[cpu][0],cur[cpu][1],t)
    cur[cpu]=(m.group(8),t)
nb=int((t1-t0)/binw)
for bi in range(nb):
    row=[]
    for cpu in (0,1):
        c=acc[(bi,cpu)]
        top=', '.join(f"{names.get(p,p)[:14]}/{p}:{s*1000:.1f}" for p,s in c.most_common(4))
        row.append(f"cpu{cpu}: {top}")
    print(f"{t0+bi*binw:.3f}  "+' | '.join(row))
