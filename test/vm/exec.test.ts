// execQemu: pvrun becomes the program in place. Tried in a separate Node
// process on dist/ (it never returns), with sh standing in for QEMU: the
// pid stays, descriptors pvrun inherited and the ones it keeps stay open,
// the others go, the environment goes along, and signal dispositions and
// the mask are a new program's (Node ignores SIGPIPE; real-time signals stay
// as the caller left them: make ignores 32 and 33). A program that cannot run
// is one error line and a shell's status. Needs `make build`. The shell reads
// its own status with builtins only: while it waits for a child, dash blocks
// every signal for a moment, which a child reading its status could catch.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {packageRoot} from '../../src/util/paths.js';

const front = `
import fs from 'node:fs';
const {execQemu} = await import(${JSON.stringify(path.join(packageRoot, 'dist', 'vm', 'exec.js'))});
const kept = fs.openSync('/dev/null', 'r');
const dropped = fs.openSync('/dev/null', 'r');
process.env.PVRUN_EXEC_TEST = 'carried';
fs.writeSync(1, JSON.stringify({pid: process.pid, kept, dropped}) + '\\n');
try {
	execQemu(process.argv[1], ['-c', 'echo "$$ $0 $PVRUN_EXEC_TEST"; echo $(ls /proc/$$/fd); while read -r k v; do case $k in SigIgn:|SigBlk:) echo "$k $v";; esac; done < /proc/$$/status'], [kept]);
} catch (error) {
	fs.writeSync(2, 'pvrun: ' + error.message + '\\n');
	process.exit(error.exitCode);
}
`;

interface Ran {
	code: number | null;
	pid: number;
	lines: string[];
	stderr: string;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pvrun-exec-test-'));
t.teardown(() => fs.rmSync(dir, {recursive: true, force: true}));

/** Run the front with `program` as QEMU and a file open at descriptor 4, as a caller hands one to QEMU (a disk image, say). */
async function runFront(program: string): Promise<Ran> {
	fs.writeFileSync(path.join(dir, 'disk'), '');
	const inherited = fs.openSync(path.join(dir, 'disk'), 'r');
	// NODE_OPTIONS out: the test runner's preload would run in the front too.
	const env = {...process.env};
	delete env['NODE_OPTIONS'];
	const child = spawn(process.execPath, ['--input-type=module', '-e', front, program], {stdio: ['ignore', 'pipe', 'pipe', 'ignore', inherited], env});
	fs.closeSync(inherited);
	let stdout = '';
	let stderr = '';
	child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
	child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
	const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
	return {code, pid: child.pid ?? 0, lines: stdout.trimEnd().split('\n'), stderr};
}

t.test("the program runs under pvrun's pid with the descriptors, environment and signal state it should have", async (t) => {
	const r = await runFront('sh');
	t.equal(r.code, 0, r.stderr);
	const [first = '{}', who, fds, ...signals] = r.lines;
	const front = JSON.parse(first) as {pid: number; kept: number; dropped: number};
	t.equal(front.pid, r.pid);
	t.equal(who, `${r.pid} sh carried`, "the caller's pid, argv[0] as given, pvrun's environment");
	const open = (fds ?? '').split(' ').map(Number);
	t.ok(open.includes(4), 'the descriptor the caller handed over stays open');
	t.ok(open.includes(front.kept), 'the descriptor pvrun keeps for it stays open');
	t.notOk(open.includes(front.dropped), "pvrun's other descriptors are closed");
	const mask = (name: string, text: string) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(text)?.[1] ?? 'ffff'}`);
	const shown = signals.join('\n');
	t.equal(mask('SigBlk', shown), 0n, 'no signal blocked');
	t.equal(mask('SigIgn', shown) & 0x7fffffffn, 0n, 'no standard signal ignored (Node ignores SIGPIPE and SIGXFSZ)');
	// Real-time signals: as the caller (this test, through Node's spawn) left them.
	const ours = fs.readFileSync('/proc/self/status', 'utf8');
	t.equal(mask('SigIgn', shown) >> 31n, mask('SigIgn', ours) >> 31n, "real-time signals ignored as the caller's are");
});

t.test('a program that cannot run: one error line and the status a shell gives', async (t) => {
	const missing = await runFront('pvrun-no-such-program');
	t.equal(missing.code, 127);
	t.equal(missing.stderr.trimEnd().split('\n').length, 1, missing.stderr);
	t.match(missing.stderr, /pvrun-no-such-program/);

	const notExecutable = path.join(dir, 'qemu');
	fs.writeFileSync(notExecutable, '#!/bin/sh\n', {mode: 0o644});
	const denied = await runFront(notExecutable);
	t.equal(denied.code, 126);
	t.equal(denied.stderr.trimEnd().split('\n').length, 1, denied.stderr);
	t.match(denied.stderr, notExecutable);
});
