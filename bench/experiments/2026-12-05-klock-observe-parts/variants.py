# Writes cs-<variant>.bpf.c here: bpf/cs.bpf.c as it was before the rate-limited relay
# (commit 098a786), as is ('old') and with one part switched off; then builds each object
# with the flags of bpf/Makefile. Run from this folder.
import pathlib, subprocess
here = pathlib.Path(__file__).resolve().parent
src = subprocess.run(['git', 'show', '098a786:bpf/cs.bpf.c'], cwd=here, capture_output=True, text=True, check=True).stdout
def early(s, fn):
    i = s.index(f'BPF_PROG({fn},')
    j = s.index('{', i)
    return s[:j+1] + '\n\treturn 0;' + s[j+1:]
v = {
    'old': src,
    'norec': early(early(src, 'cs_begin'), 'cs_end'),   # tracepoints attached, no records
    'nowake': src.replace('bpf_ringbuf_submit(e, 0)', 'bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP)'),  # records, relay never woken
    'noswitch': early(src, 'cs_switch'),                  # no store per guest context switch
}
for k, s in v.items():
    c = here / f'cs-{k}.bpf.c'
    c.write_text(s)
    o = here / f'cs-{k}.bpf.o'
    subprocess.run(['clang', '-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-I', str(here / '../../../bpf'), '-c', str(c), '-o', str(o)], check=True)
    subprocess.run(['llvm-strip', '-g', str(o)], check=True)
