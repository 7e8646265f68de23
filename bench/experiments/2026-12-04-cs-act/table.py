import json,collections,sys
rows=collections.defaultdict(lambda: collections.defaultdict(list))
p99=collections.defaultdict(lambda: collections.defaultdict(list))
cfgs=[]
for f in sys.argv[1:]:
    for line in open(f):
        if 'pvwork-result' not in line: continue
        pre,js=line.split('pvwork-result ',1)
        cfg=pre.split()[1]
        if cfg not in cfgs: cfgs.append(cfg)
        r=json.loads(js)
        for x in r.get('runs',[r]):
            key=(r['workload'],x.get('lock',''),x.get('workUs',''))
            rows[key][cfg].append(x['opsPerSec'])
            if 'p99WaitUs' in x: p99[key][cfg].append(x['p99WaitUs'])
def med(x):
    x=sorted(x); return x[len(x)//2] if x else 0
print('%-26s'%'ops/s'+''.join('%10s'%c for c in cfgs)+'  ceil/pl '+' '.join('%s/pl closed'%c for c in cfgs if c.startswith('act')))
for k,v in rows.items():
    m={c:med(v.get(c,[])) for c in cfgs}
    pl,no=m.get('plain',0),m.get('nooc',0)
    extra=' '.join('%5.2f %5.2f'%(m[c]/pl if pl else 0,(m[c]-pl)/(no-pl) if no!=pl else float('nan')) for c in cfgs if c.startswith('act'))
    print('%-26s'%str(k)+''.join('%10.0f'%m[c] for c in cfgs)+'  %6.2f  '%(no/pl if pl else 0)+extra)
print()
print('%-26s'%'p99 wait us'+''.join('%10s'%c for c in cfgs))
for k,v in p99.items():
    print('%-26s'%str(k)+''.join('%10.0f'%med(v.get(c,[])) for c in cfgs))
