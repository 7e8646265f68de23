import sys
m=open('/sys/kernel/tracing/trace_marker','w')
for line in sys.stdin.buffer:
    s=line.decode('utf-8','replace')
    if 'hunt: measure' in s or 'pvrun-guest: ready' in s:
        m.write('HOST '+s.strip()+'\n'); m.flush()
    sys.stdout.write(s); sys.stdout.flush()
