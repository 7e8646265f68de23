// What pvrun's command line offers, once: its --pv- options and its commands, with a line each
// for --help, a paragraph each for the manual page (`pvrun man`: pvrun(1)) and the words shell
// completion offers (`pvrun completion bash|zsh`). pv-options.ts parses the options named here;
// commands.ts (yargs) parses the commands, and test/cli/reference.test.ts checks that the two
// agree with this table.

export interface PvOptionDoc {
	name: `--pv-${string}`;
	/** Its value's placeholder in --help; none for a flag. */
	arg?: string;
	/** Its values when they are a fixed set (completion offers them). */
	choices?: readonly string[];
	/** Completion offers file names for its value. */
	file?: boolean;
	/** --help's line, after the name and placeholder. */
	brief: string;
	/** The manual page's paragraph. */
	detail: string;
	/** Left out of --help (one screen): the manual page and completion have it. */
	manOnly?: true;
}

export const pvOptionDocs: readonly PvOptionDoc[] = [
	{
		name: '--pv-cpus',
		arg: 'LIST',
		brief: 'host CPUs for the vCPUs, e.g. 0-3,6 (default: all allowed)',
		detail:
			'The host CPUs the vCPU threads may use, as a list of CPUs and ranges (0-3,6). A vCPU given a CPU of its own gets one of these; the others float on the rest. Default: every CPU pvrun itself may run on.',
	},
	{
		name: '--pv-accel',
		arg: 'MODE',
		choices: ['auto', 'kvm', 'tcg'],
		brief: "auto|kvm|tcg, when QEMU's arguments choose none (auto)",
		detail: "The accelerator, when QEMU's arguments name none: kvm where /dev/kvm opens, else tcg (multi-threaded), with auto.",
	},
	{
		name: '--pv-log',
		arg: 'FILE',
		file: true,
		brief: "write pvrun's decisions to FILE, one JSON object a line",
		detail:
			'Append every decision, what the guest agent said and every warning to FILE, one JSON object per line with a format version, the VM id and a level (docs/event-log.md; schema: docs/event-log.schema.json). Rotated to FILE.1 at 64 MiB.',
	},
	{name: '--pv-off', brief: 'run QEMU exactly as given, without the hint channel', detail: 'Run QEMU exactly as given: no devices added, no helper, no files.'},
	{
		name: '--pv-dry-run',
		brief: 'print the QEMU command line, one argument a line; exit',
		detail: 'Print the QEMU command line pvrun would run, one argument per line, and exit.',
	},
	{
		name: '--pv-fast-path',
		arg: 'X',
		choices: ['on', 'off'],
		brief: 'on|off: apply hints in the native fast path (on)',
		detail: "Whether the native fast path (a real-time thread in C) applies the decisions it can foresee, or pvrun's JavaScript thread takes every one.",
	},
	{
		name: '--pv-qemu',
		arg: 'PATH',
		file: true,
		brief: 'the QEMU binary (default: qemu-system-x86_64)',
		detail: 'The QEMU binary to run, a path or a name looked up in PATH (default: qemu-system-x86_64).',
	},
	{
		name: '--pv-agent-wait',
		arg: 'S',
		brief: 'say so if no guest agent answers in S s of guest time (60)',
		detail: 'Say so (once, on stderr and in the log) if no guest agent has answered after S seconds of guest time; the VM runs on without hints (default 60).',
	},
	{
		name: '--pv-cs',
		arg: 'MODE',
		choices: ['off', 'observe', 'act'],
		brief: 'off|observe|act: guest critical sections, host feedback (off)',
		detail:
			"Critical sections: observe the guest's sections and kernel lock waits and tell the guest when its vCPU is preempted or its CPU overloaded (observe), and also keep a vCPU inside a section running (act). Default off.",
	},
	{
		name: '--pv-cs-feedback',
		arg: 'S',
		choices: ['auto', 'bpf', 'proc'],
		brief: "auto|bpf|proc: the host's view of vCPU threads (auto)",
		detail: "Where the host's view of the vCPU threads comes from: a host BPF program (bpf), /proc (proc), or bpf where it loads (auto).",
	},
	{
		name: '--pv-placement',
		arg: 'P',
		choices: ['auto', 'priority', 'cpuset', 'threads'],
		brief: 'auto|priority|cpuset|threads: how grants are made (auto)',
		detail:
			"How pvrun gives a vCPU a CPU of its own: the granted thread alone is pinned and put in SCHED_FIFO 1, the floating vCPU threads are not touched (priority: a decision touches only the threads whose grant begins or ends; root, not with --pv-cs act); the floating threads moved as one, in a cpuset of the VM's (cpuset: cgroup v1, root, not in a libvirt machine's cgroup); one sched_setaffinity per floating thread (threads); or priority in VMs of 16 vCPUs or more where it can (else cpuset where moving a thread between cpusets is quick), threads below (auto). docs/placement.md.",
	},
	{
		name: '--pv-cs-boost',
		arg: 'K=V',
		brief: "act's bounds, e.g. max=1000us,share=10% (see docs/cli.md)",
		detail: "The bounds of --pv-cs act's boosts: max=US (one boost's length), share=P% (of the window), window=MS, payback=P%; any of them, in any order.",
	},
	{
		name: '--pv-guest-cpu',
		arg: 'P',
		brief: 'most of one host CPU, %, the guest can make pvrun use (5)',
		detail:
			'The most of one host CPU, in percent (0.5 to 100, or off), that the guest can make pvrun use over any 10 s: its kicks, records and frames wait beyond it. Default 5.',
	},
	{
		name: '--pv-metrics',
		arg: 'FILE',
		file: true,
		manOnly: true,
		brief: "keep the VM's numbers in FILE, Prometheus text format",
		detail:
			"Keep the VM's numbers in FILE in Prometheus' text format, for node_exporter's textfile collector: hint records and decisions, each vCPU's placement, the CPUs it leases and whether it waits for one. Replaced whole every 5 s; removed when the VM ends.",
	},
	{
		name: '--pv-hint-script',
		arg: 'FILE',
		file: true,
		manOnly: true,
		brief: 'a bpftrace script the guest agent runs; its `pvhint` lines are hints',
		detail:
			"A bpftrace script (repeatable, up to 8, 64 KiB each) pvrun sends to the guest agent after each handshake. Where the guest has bpftrace, the agent runs it; a line it prints of the form `pvhint affinity <tid> <cpulist>` becomes an affinity hint, as if the thread had pinned itself to those vCPUs (`all` releases it); other lines go to the event log. A script that fails (one that does not compile) is said on stderr with bpftrace's message. docs/hint-programs.md.",
	},
	{
		name: '--pv-share',
		arg: 'N',
		manOnly: true,
		brief: "this VM's weight for host CPUs other VMs want too (1)",
		detail:
			"This VM's weight (1 to 1000) when pvrun VMs on the host want more CPUs of their own than are free: a freed CPU goes to the waiting VM with the fewest leased CPUs per weight, then to the one that waited longest. docs/leases.md.",
	},
];

export interface CommandDoc {
	/** As the manual shows it (and --help, unless `help` says otherwise). */
	usage: string;
	brief: string;
	/** --help's usage and brief, where one line stands for more than this command. */
	help?: {usage: string; brief: string};
	detail: string;
	/** Its first word after `pvrun`. */
	name: string;
	/** Words completion offers after the command: verbs, then options. */
	words: readonly string[];
}

export const commandDocs: readonly CommandDoc[] = [
	{
		name: 'status',
		usage: 'pvrun status [--all] [--json]',
		brief: 'the pvrun VMs running on this machine',
		help: {usage: 'pvrun status|top|trace', brief: 'your VMs: a table, a live view, bpftrace'},
		detail:
			"List your pvrun VMs running on this machine: QEMU, the name, the state and uptime, the log, whether hints work, the vCPU → host CPU placement. --all lists every user's (theirs need root to read), --json prints the same as JSON.",
		words: ['--all', '--json', '--help'],
	},
	{
		name: 'top',
		usage: 'pvrun top [VM] [--all] [-d SECONDS] [-n COUNT]',
		brief: 'a live view of the pvrun VMs and their decisions',
		detail:
			"Show your pvrun VMs (or the one named by its id, name, or QEMU or pvrun pid; --all: every user's) as top does processes: each vCPU's host CPUs, whether it has one of its own, the CPU it last ran on, its CPU use and its wait for a CPU, the hints read and the newest decisions. Redraws every -d SECONDS (default 1) until q; piped, prints -n COUNT frames (default 1).",
		words: ['--all', '--delay', '--iterations', '--help'],
	},
	{
		name: 'trace',
		usage: 'pvrun trace [NAME] [--vm VM] [--duration SECONDS]',
		brief: "host-side bpftrace scripts on a VM's vCPU threads",
		detail:
			"Run one of the bpftrace scripts in bpf/trace/ against a VM's vCPU threads (as root): runqlat (each vCPU thread's run-queue latency), preempt (who preempted a vCPU, for how long), hint-delay (from pvrun's re-pin of a vCPU thread to its first run on its new CPU). --vm takes the VM's id, name, or QEMU or pvrun pid (default: the only one running), or a plain QEMU's pid; --all looks among every user's VMs; --duration SECONDS stops it and prints what it measured (default: at Ctrl-C); bpftrace's own options go after --. Without a name, lists the scripts. docs/trace.md.",
		words: ['runqlat', 'preempt', 'hint-delay', '--vm', '--all', '--duration', '--help'],
	},
	{
		name: 'image',
		usage: 'pvrun image build|path|list [--flavour NAME]',
		brief: "the default guest's kernel and initrd",
		help: {usage: 'pvrun image|demo', brief: "the default guest's files; boot it"},
		detail:
			"Build the default guest image (Debian's kernel, an initrd with the guest agent), print its kernel and initrd paths (building them if needed), or list the cached images. --force rebuilds. --flavour ssh is the same guest without the agent, with an SSH server and a test key (what pvrun agent install is tested on).",
		words: ['build', 'path', 'list', '--force', '--flavour', '--help'],
	},
	{
		name: 'agent',
		usage: 'pvrun agent install|uninstall|status USER@HOST[:PORT]',
		brief: 'the guest agent into your own guest, over SSH',
		help: {usage: 'pvrun agent install USER@HOST', brief: 'the agent into your own guest, over SSH'},
		detail:
			"Over SSH, check a running guest (kernel, BTF, root or sudo, pvrun's virtio-serial port and shared memory, a line each), copy the static agent, the hint tools and headers into it, install a service that starts the agent at boot (systemd, an init script, or /etc/init.d/S90pvagent), start it and wait until pvrun answers it (--wait SECONDS). A second install changes nothing; a newer pvrun's upgrades and restarts the agent. Keys: -i FILE, else ~/.ssh/id_*, then ssh-agent, then a password at the terminal. Host keys are checked against --known-hosts FILE (default ~/.ssh/known_hosts); --accept-new-host-key takes an unknown one, a changed one is refused. --vm names the pvrun VM to watch (default: the one forwarding the port). uninstall removes it all; status says what runs (exit 3: no agent running).",
		words: ['install', 'uninstall', 'status', '--identity', '--known-hosts', '--accept-new-host-key', '--vm', '--wait', '--help'],
	},
	{
		name: 'demo',
		usage: 'pvrun demo',
		brief: 'boot the default guest and show hints acting',
		detail: 'Boot the default guest under pvrun and show it reach readiness.',
		words: ['--help'],
	},
	{
		name: 'bench',
		usage: 'pvrun bench [--quick]',
		brief: 'benchmarks; --matrix FILE: yours, gated in CI',
		detail:
			"Run the benchmark matrix (plain QEMU, static pinning, pvrun; several scenarios and workloads) and write matrix.json, matrix.md and charts; --quick is the smoke run. --matrix FILE runs a matrix file's guest workloads instead (docs/ci.md), and with --baseline exits 1 when a result got worse beyond the noise. bench hint-latency measures the delay from a guest pin to the host pin.",
		words: [
			'matrix',
			'hint-latency',
			'--quick',
			'--reps',
			'--seconds',
			'--scenarios',
			'--workloads',
			'--configs',
			'--out',
			'--hints',
			'--warmup',
			'--runs',
			'--idle-seconds',
			'--vcpus',
			'--matrix',
			'--baseline',
			'--threshold',
			'--alpha',
			'--gate',
			'--junit',
			'--summary',
			'--time-limit',
			'--compare',
			'--help',
		],
	},
	{
		name: 'completion',
		usage: 'pvrun completion bash|zsh',
		brief: 'a shell completion script, e.g. source <(pvrun completion bash)',
		detail: "Print a completion script for bash or zsh: pvrun's commands, its --pv- options and their values; QEMU's arguments complete as file names.",
		words: ['bash', 'zsh', '--help'],
	},
	{
		name: 'man',
		usage: 'pvrun man',
		brief: 'this manual page, as roff: man -l <(pvrun man)',
		detail: 'Print this manual page (roff), which make install puts in share/man/man1/pvrun.1.',
		words: ['--help'],
	},
];

/** The --pv- options that take a value. */
export const valueOptionNames: ReadonlySet<string> = new Set(pvOptionDocs.filter((o) => o.arg !== undefined).map((o) => o.name));

/** --help's line for option `o`: name and placeholder in 16 columns, then its line. */
export function optionHelpLine(o: PvOptionDoc): string {
	const left = o.arg ? `${o.name} ${o.arg}` : o.name;
	return `  ${left.length < 16 ? left.padEnd(16) : `${left} `} ${o.brief}`;
}

/** --help's line for command `c`. */
export function commandHelpLine(c: CommandDoc): string {
	const {usage, brief} = c.help ?? c;
	return `  ${usage.padEnd(28)} ${brief}`;
}
