# Beside ../2026-12-04-cs-share/share.mjs: waits for its QEMU and busy processes, then samples
# every 50 ms for SECS seconds, after DELAY, the scheduler's view of the four busiest QEMU threads
# (the vCPUs) and of the busy processes: se.avg.load_avg / runnable_avg / util_avg, the policy
# (0 other, 1 fifo, 5 idle) and the CPU. Writes one JSON object to OUT: means per kind, with
# load averages above 10^6 counted apart (`huge`) and left out of the mean.
# usage: python3 load.py DELAY SECS OUT
import json, os, re, sys, time

delay, secs, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]


def rd(p):
    try:
        return open(p).read()
    except OSError:
        return ''


def find():
    q, hogs = None, []
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        if rd(f'/proc/{p}/comm').startswith('qemu-system'):
            q = p
        if rd(f'/proc/{p}/cmdline').replace('\0', ' ').strip() == 'sh -c while :; do :; done':
            hogs.append(p)
    return q, hogs


t0 = time.time()
while time.time() - t0 < 60:
    q, hogs = find()
    if q and len(hogs) >= 2:
        break
    time.sleep(0.2)
time.sleep(delay)
runtime = lambda t: float((rd(f'/proc/{q}/task/{t}/schedstat').split() or ['0'])[0])
vcpus = sorted(os.listdir(f'/proc/{q}/task'), key=runtime, reverse=True)[:4]
watch = [('vcpu', f'/proc/{q}/task/{t}') for t in vcpus] + [('hog', f'/proc/{h}') for h in hogs]
acc = {}
end = time.time() + secs
while time.time() < end:
    for kind, path in watch:
        s = rd(path + '/sched')
        field = lambda k: float((re.search(r'\n' + re.escape(k) + r'\s*:\s*(-?[\d.]+)', s) or [0, 0])[1])
        st = rd(path + '/stat')
        f = st[st.rfind(')') + 2:].split()
        a = acc.setdefault(kind, {'load': 0, 'runnable': 0, 'util': 0, 'n': 0, 'huge': 0, 'policy': {}, 'cpu': {}})
        load = field('se.avg.load_avg')
        a['huge'] += load > 1e6
        a['load'] += load if load <= 1e6 else 0
        a['runnable'] += field('se.avg.runnable_avg')
        a['util'] += field('se.avg.util_avg')
        a['n'] += 1
        for key, val in (('policy', int(field('policy'))), ('cpu', int(f[36]) if len(f) > 36 else -1)):
            a[key][val] = a[key].get(val, 0) + 1
    time.sleep(0.05)
res = {
    k: {
        'load': round(v['load'] / max(1, v['n'] - v['huge'])),
        'huge': v['huge'],
        'samples': v['n'],
        'runnable': round(v['runnable'] / v['n']),
        'util': round(v['util'] / v['n']),
        'policy': {p: round(c / v['n'], 3) for p, c in v['policy'].items()},
        'cpu': {p: round(c / v['n'], 3) for p, c in v['cpu'].items()},
    }
    for k, v in acc.items()
}
open(out, 'w').write(json.dumps(res) + '\n')
