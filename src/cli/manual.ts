// `pvrun man` (the manual page pvrun(1), roff) and `pvrun completion bash|zsh`, both from the
// table --help is made from (reference.ts).
import {commandDocs, pvOptionDocs, valueOptionNames} from './reference.js';

/** Text as roff shows it literally: backslashes and dashes escaped, other than ASCII named by code, no line read as a request. */
function roff(text: string): string {
	return text
		.replace(/\\/g, '\\e')
		.replace(/-/g, '\\-')
		.replace(/[^\x20-\x7e\n]/gu, (c) => `\\[u${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}]`)
		.split('\n')
		.map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
		.join('\n');
}

/** pvrun(1) in roff (man(7) macros). */
export function manPage(version: string): string {
	const options = pvOptionDocs.map((o) => `.TP\n${o.arg ? `.BI ${roff(o.name)} " ${roff(o.arg)}"` : `.B ${roff(o.name)}`}\n${roff(o.detail)}\n`);
	const commands = commandDocs.map((c) => `.TP\n.B ${roff(c.usage)}\n${roff(c.detail)}\n`);
	return `.TH PVRUN 1 "" "pvrun ${roff(version)}" "User Commands"
.SH NAME
pvrun \\- qemu\\-system\\-x86_64 with guest eBPF hints the host acts on
.SH SYNOPSIS
.B pvrun
[\\fB\\-\\-pv\\-\\fIOPTION\\fR ...] \\fIQEMU\\-ARGUMENT\\fR ...
.br
.B pvrun
\\fICOMMAND\\fR ...
.SH DESCRIPTION
${roff(`pvrun runs qemu-system-x86_64 with the user's arguments unchanged, and adds a hint channel: a shared-memory device and a virtio-serial port that the guest agent of the default image (or one installed in the guest) uses to report what the guest's threads ask of their CPUs, from eBPF programs in an unmodified guest kernel. pvrun acts on the host: a guest thread pinned to one vCPU gets that vCPU's thread a host CPU of its own while it holds the pin, within --pv-cpus. pvrun becomes QEMU (the pid the caller started is QEMU's); a helper process serves the hint channel and removes its files when QEMU ends. Command lines that run no guest (-version, -help, -machine none...) go to QEMU exactly as given.`)}
.SH OPTIONS
${roff("pvrun's options start with --pv- and may stand wherever a QEMU option may; everything else goes to QEMU, in order.")}
${options.join('')}.SH COMMANDS
${roff('A first argument naming a command runs it instead of QEMU.')}
${commands.join('')}.SH ENVIRONMENT
.TP
.B PVRUN_LOG_RATE
${roff('Lines a second per kind of event in the --pv-log file (default 20; unlimited for no budget).')}
.TP
.B PVRUN_DEBUG
${roff('With 1, an error is followed by its causes, and an internal error by its stack.')}
.TP
.B PVRUN_RUNTIME_DIR
${roff("Where each VM's run directory (sockets, state file) goes, an absolute path. Default: /run/pvrun for root, else $XDG_RUNTIME_DIR/pvrun, else $TMPDIR/pvrun-UID (made 0700, used only while it is the caller's alone). pvrun status looks there.")}
.TP
.B XDG_CACHE_HOME
${roff('The default guest image is cached in $XDG_CACHE_HOME/pvrun (default ~/.cache/pvrun).')}
.SH EXIT STATUS
${roff("QEMU's own exit status, or as a shell reports a signal QEMU died of. Before QEMU runs: 2 for a usage error (an unknown --pv- option, a bad value), 126 when the QEMU binary is not executable or a directory, 127 when it is not found, 70 for an internal error, 1 for anything else.")}
.SH EXAMPLES
.nf
${roff('set -- $(pvrun image path)\npvrun --pv-cpus 0-1 --pv-log events.jsonl -m 512 -smp 2 -nographic \\\n    -kernel "$1" -initrd "$2" -append console=ttyS0')}
.fi
.SH SEE ALSO
.BR qemu\\-system\\-x86_64 (1),
.BR taskset (1),
.BR virsh (1);
${roff("docs/ in pvrun's source: cli.md, event-log.md, lifecycle.md, libvirt.md.")}
`;
}

/** A completion script for bash; zsh runs the same through bashcompinit. */
export function completionScript(shell: 'bash' | 'zsh'): string {
	const withChoices = pvOptionDocs.filter((o) => o.choices);
	const files: string[] = pvOptionDocs.filter((o) => o.file).map((o) => o.name);
	const otherValues = [...valueOptionNames].filter((n) => !files.includes(n) && !withChoices.some((o) => o.name === n));
	const bash = `# pvrun completion for ${shell}: source <(pvrun completion ${shell}), e.g. in ~/.${shell}rc
_pvrun() {
	local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	if ((COMP_CWORD > 1)); then
		case \${COMP_WORDS[1]} in
${commandDocs.map((c) => `		${c.name}) COMPREPLY=($(compgen -W '${c.words.join(' ')}' -- "$cur")); return ;;`).join('\n')}
		esac
	fi
	case $prev in
${withChoices.map((o) => `	${o.name}) COMPREPLY=($(compgen -W '${(o.choices ?? []).join(' ')}' -- "$cur")); return ;;`).join('\n')}
	${files.join('|')}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	${otherValues.join('|')}) return ;;
	esac
	if [[ $cur == --* ]]; then
		COMPREPLY=($(compgen -W '${pvOptionDocs.map((o) => o.name).join(' ')} --help --version' -- "$cur"))
	elif ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W '${commandDocs.map((c) => c.name).join(' ')}' -- "$cur"))
	fi
	# Anything else is QEMU's: file names (complete -o default).
}
complete -o default -F _pvrun pvrun
`;
	return shell === 'bash' ? bash : `autoload -U +X bashcompinit && bashcompinit\n${bash}`;
}
