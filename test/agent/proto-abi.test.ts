// The host's mirror of the agent protocol (src/agent/protocol.ts) must match
// the C header the guest agent is built with (guest-agent/proto.h). A probe
// compiled against the header fills each reply struct with distinct values and
// prints its bytes for the TypeScript decoders; and it decodes the requests the
// TypeScript encoders build with the C structs. Constants are compared too.
import t from 'tap';
import {cProbe} from '../helpers/c-probe.js';
import * as P from '../../src/agent/protocol.js';

const probe = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include "proto.h"
#define V(name, value) printf("%s %lld\n", name, (long long)(value))
static void hex(const char *name, const void *p, size_t n) {
	printf("%s ", name);
	for (size_t i = 0; i < n; i++) printf("%02x", ((const unsigned char *)p)[i]);
	printf("\n");
}
static size_t unhex(const char *s, unsigned char *out, size_t max) {
	size_t n = strlen(s) / 2;
	if (n > max) n = max;
	for (size_t i = 0; i < n; i++) sscanf(s + 2 * i, "%2hhx", &out[i]);
	return n;
}
int main(int argc, char **argv) {
	if (argc != 5) return 2;
	V("magic", PVAG_MAGIC); V("version", PVAG_VERSION); V("maxPayload", PVAG_MAX_PAYLOAD); V("nameLength", PVAG_NAME_LEN);
	printf("portName %s\n", PVAG_PORT_NAME); printf("kickPortName %s\n", PVAG_KICK_PORT_NAME); printf("liveFile %s\n", PVAG_LIVE_FILE);
	V("type.hello", PVAG_HELLO); V("type.load", PVAG_LOAD); V("type.unload", PVAG_UNLOAD); V("type.list", PVAG_LIST);
	V("type.stats", PVAG_STATS); V("type.ping", PVAG_PING); V("type.live", PVAG_LIVE); V("type.snapshot", PVAG_SNAPSHOT); V("type.reply", PVAG_REPLY); V("type.error", PVAG_ERROR);
	V("type.kick", PVAG_KICK); V("type.log", PVAG_LOG); V("type.script", PVAG_SCRIPT); V("type.scriptOut", PVAG_SCRIPT_OUT);
	V("scriptMax", PVAG_SCRIPT_MAX); V("scriptLineMax", PVAG_SCRIPT_LINE_MAX); V("maxScripts", PVAG_MAX_SCRIPTS);
	V("stream.stdout", PVAG_SCRIPT_STDOUT); V("stream.stderr", PVAG_SCRIPT_STDERR); V("stream.exit", PVAG_SCRIPT_EXIT); V("stream.refused", PVAG_SCRIPT_REFUSED);
	V("sizeof.scriptReq", sizeof(struct pvag_script_req)); V("sizeof.scriptOut", sizeof(struct pvag_script_out));
	V("sizeof.frame", sizeof(struct pvag_frame));

	struct pvag_frame f = {.magic = PVAG_MAGIC, .version = PVAG_VERSION, .type = PVAG_KICK, .id = 0x01020304, .len = 0};
	hex("frame.kick", &f, sizeof f);

	struct pvag_hello_reply h;
	memset(&h, 0, sizeof h);
	h.version = 1; h.shm_ok = 1; h.nr_cpus = 3; h.guest_epoch = 0x1122334455667788ull; h.programs = 5; h.shm_version = 2;
	strcpy(h.agent_version, "0.1.0-probe"); strcpy(h.kernel_release, "6.1.0-probe-amd64");
	hex("hello", &h, sizeof h);

	struct pvag_load_reply l = {.id = 7, .links = 3};
	hex("load", &l, sizeof l);

	struct { uint32_t count; struct pvag_prog_info info[2]; } __attribute__((packed)) list;
	memset(&list, 0, sizeof list);
	list.count = 2;
	list.info[0].id = 11; list.info[0].record_type = 1; strcpy(list.info[0].name, "affinity"); list.info[0].records = 0x100000001ull;
	list.info[1].id = 12; list.info[1].record_type = 2; strcpy(list.info[1].name, "other"); list.info[1].records = 42;
	hex("list", &list, sizeof list);

	struct pvag_stats s = {.records = 1, .dropped = 2, .kicks = 3, .frames_in = 4, .frames_bad = 0x500000000ull, .programs = 6, .host_links = 7};
	hex("stats", &s, sizeof s);

	struct { struct pvag_error e; char msg[8]; } __attribute__((packed)) err = {.e = {.err = 22}, .msg = "bad prog"};
	hex("error", &err, sizeof err);

	struct { struct pvag_script_out o; char line[5]; } __attribute__((packed)) so = {.o = {.script = 0x0a0b0c0d, .stream = PVAG_SCRIPT_REFUSED, .status = 3, .hints = 9}, .line = "hi\x1b!x"};
	hex("scriptOut", &so, sizeof so);
	uint32_t spid = 4242;
	hex("scriptReply", &spid, sizeof spid);

	unsigned char buf[256];
	struct pvag_hello_req hr;
	memset(&hr, 0, sizeof hr);
	if (unhex(argv[1], buf, sizeof buf) != sizeof hr) return 3;
	memcpy(&hr, buf, sizeof hr);
	V("helloReq.version", hr.version); V("helloReq.shmSize", hr.shm_size);

	struct pvag_load_req lr;
	size_t n = unhex(argv[2], buf, sizeof buf);
	if (n < sizeof lr) return 4;
	memcpy(&lr, buf, sizeof lr);
	V("loadReq.recordType", lr.record_type); V("loadReq.objectBytes", n - sizeof lr);
	printf("loadReq.name %.*s\n", PVAG_NAME_LEN, lr.name);

	struct pvag_script_req sr;
	n = unhex(argv[4], buf, sizeof buf);
	if (n < sizeof sr) return 6;
	memcpy(&sr, buf, sizeof sr);
	V("scriptReq.script", sr.script); V("scriptReq.textBytes", n - sizeof sr);
	printf("scriptReq.name %.*s\n", PVAG_NAME_LEN, sr.name);
	printf("scriptReq.text %.*s\n", (int)(n - sizeof sr), (const char *)buf + sizeof sr);

	struct pvag_frame fr;
	if (unhex(argv[3], buf, sizeof buf) != sizeof fr + 3) return 5;
	memcpy(&fr, buf, sizeof fr);
	V("frameOut.magic", fr.magic); V("frameOut.version", fr.version); V("frameOut.type", fr.type);
	V("frameOut.id", fr.id); V("frameOut.len", fr.len);
	return 0;
}
`;

t.test('src/agent/protocol.ts matches guest-agent/proto.h', async (t) => {
	const helloReq = P.encodeHello(0x12345678).toString('hex');
	const loadReq = P.encodeLoad(9, 'affinity', Buffer.from('ELF!')).toString('hex');
	const frameOut = P.encodeFrame(P.FrameType.ping, 0xdeadbeef, Buffer.from('abc')).toString('hex');
	const scriptReq = P.encodeScript(0x01020304, 'pin.bt', 'BEGIN { exit(); }').toString('hex');
	const c = await cProbe(t, probe, 'guest-agent', [helloReq, loadReq, frameOut, scriptReq]);
	const num = (k: string) => Number(c.get(k));
	const bytes = (k: string) => Buffer.from(c.get(k) ?? '', 'hex');

	t.test('constants', async (t) => {
		t.equal(num('magic'), P.frameMagic);
		t.equal(num('version'), P.protocolVersion);
		t.equal(num('maxPayload'), P.maxPayload);
		t.equal(num('nameLength'), P.nameLength);
		t.equal(c.get('portName'), P.agentPortName, "the agent's port name, as pvrun adds the port");
		t.equal(c.get('kickPortName'), P.kickPortName, 'the kick port name');
		t.equal(c.get('liveFile'), P.liveFile, 'the file the agent writes on LIVE, where /init waits for it');
		t.equal(num('sizeof.frame'), P.frameHeaderSize);
		t.equal(num('scriptMax'), P.scriptMax);
		t.equal(num('scriptLineMax'), P.scriptLineMax);
		t.equal(num('maxScripts'), P.maxScripts);
		for (const [name, value] of Object.entries(P.ScriptStream)) t.equal(num(`stream.${name}`), value, `script stream ${name}`);
		t.equal(num('sizeof.scriptReq'), 8 + P.nameLength);
		t.equal(num('sizeof.scriptOut'), 16);
		for (const [name, value] of Object.entries(P.FrameType)) t.equal(num(`type.${name}`), value, `frame type ${name}`);
		t.equal([...c.keys()].filter((k) => k.startsWith('type.')).length, Object.keys(P.FrameType).length, 'every C frame type is known');
	});

	t.test('frames the agent sends parse on the host', async (t) => {
		const parser = new P.FrameParser();
		const frames = parser.push(bytes('frame.kick'));
		t.same(
			frames.map((f) => ({type: f.type, id: f.id, len: f.payload.length})),
			[{type: P.FrameType.kick, id: 0x01020304, len: 0}],
		);
	});

	t.test('replies the agent builds decode field by field', async (t) => {
		t.same(P.decodeHello(bytes('hello')), {
			version: 1,
			shmOk: true,
			nrCpus: 3,
			guestEpoch: 0x1122334455667788n,
			programs: 5,
			shmVersion: 2,
			agentVersion: '0.1.0-probe',
			kernelRelease: '6.1.0-probe-amd64',
		});
		t.same(P.decodeLoad(bytes('load')), {id: 7, links: 3});
		t.same(P.decodeList(bytes('list')), [
			{id: 11, recordType: 1, name: 'affinity', records: 0x100000001n},
			{id: 12, recordType: 2, name: 'other', records: 42n},
		]);
		t.same(P.decodeStats(bytes('stats')), {records: 1n, dropped: 2n, kicks: 3n, framesIn: 4n, framesBad: 0x500000000n, programs: 6, hostLinks: 7});
		t.same(P.decodeError(bytes('error')), {errno: 22, message: 'bad prog'});
		t.same(P.decodeScriptOut(bytes('scriptOut')), {script: 0x0a0b0c0d, stream: 'refused', status: 3, hints: 9, text: 'hi?!x'}, 'control characters dropped');
		t.equal(P.decodeScriptReply(bytes('scriptReply')), 4242);
	});

	t.test('requests the host builds decode with the C structs', async (t) => {
		t.equal(num('helloReq.version'), P.protocolVersion);
		t.equal(num('helloReq.shmSize'), 0x12345678);
		t.equal(num('loadReq.recordType'), 9);
		t.equal(c.get('loadReq.name'), 'affinity');
		t.equal(num('loadReq.objectBytes'), 4, 'the ELF object follows the fixed part');
		t.equal(num('frameOut.magic'), P.frameMagic);
		t.equal(num('frameOut.version'), P.protocolVersion);
		t.equal(num('frameOut.type'), P.FrameType.ping);
		t.equal(num('frameOut.id'), 0xdeadbeef);
		t.equal(num('frameOut.len'), 3);
		t.equal(num('scriptReq.script'), 0x01020304);
		t.equal(c.get('scriptReq.name'), 'pin.bt');
		t.equal(num('scriptReq.textBytes'), 17, 'the text follows the fixed part');
		t.equal(c.get('scriptReq.text'), 'BEGIN { exit(); }');
	});
});
