// The agent's reading of a hint script's `pvhint affinity <tid> <cpulist>` lines
// (guest-agent/scripts.c, scripts_parse_hint), compiled and run on the host: the lines
// a guest script prints are untrusted, so every malformed one must be refused.
import t from 'tap';
import {cProbe} from '../helpers/c-probe.js';

const probe = String.raw`
#define _GNU_SOURCE
#include <stdio.h>
#include "scripts.c"
int progs_append(uint16_t type, const void *payload, uint16_t len) { (void)type; (void)payload; (void)len; return 0; }
uint64_t pvshm_now_ns(void) { return 0; }
int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		uint32_t tid = 0;
		uint64_t mask[4];
		int err = scripts_parse_hint(argv[i], 4, &tid, mask);
		printf("%d %d %u %llx\n", i, err, tid, (unsigned long long)mask[0]);
	}
	return 0;
}
`;

t.test('pvhint affinity lines: the taken ones give a tid and a vCPU mask, the rest an errno', async (t) => {
	const lines: Array<[string, string]> = [
		['pvhint affinity 123 1', '0 123 2'],
		['pvhint affinity 123 0-2', '0 123 7'],
		['pvhint affinity 7 0,3', '0 7 9'],
		['pvhint affinity 7 all', '0 7 f'],
		['pvhint affinity 7 4', '-34 7 0'],
		['pvhint affinity 7 1-9', '-34 7 0'],
		['pvhint affinity 0 1', '-22 0'],
		['pvhint affinity -5 1', '-22 0'],
		['pvhint affinity 7 1 extra', '-22'],
		['pvhint affinity 7', '-22'],
		['pvhint affinity x 1', '-22'],
		['pvhint affinity 7 2-1', '-22'],
		['pvhint affinity 7 a-b', '-22'],
		['pvhint affinity 7 1-', '-22'],
		['pvhint cs 7 1', '-22'],
		['pvhint affinity 99999999999 1', '-22'],
	];
	const c = await cProbe(
		t,
		probe,
		['guest-agent', 'bpf'],
		lines.map(([l]) => l),
	);
	lines.forEach(([line, want], i) => {
		const got = c.get(String(i + 1)) ?? '';
		t.ok(got.startsWith(want), `${JSON.stringify(line)} → ${want} (${got})`);
	});
});
