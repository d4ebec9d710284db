package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/xdprouter/xdprouter/api"
)

// globalFlags are xdprouterctl's own flags; valueFlags take a value (the
// next word).
var (
	globalFlags = []string{"--config", "--api", "--json"}
	valueFlags  = []string{"--config", "--api", "--interval", "--count"}
)

// commandFlags are the flags of each command after its name.
func commandFlags(cmd string) []string {
	switch cmd {
	case "stats":
		return []string{"--watch", "--interval", "--count"}
	case "lookup":
		var fs []string
		for _, k := range api.FlowKeys {
			fs = append(fs, "--"+k)
		}
		return fs
	}
	return nil
}

// commandNames lists the commands, completion included, sorted.
func commandNames() []string {
	names := []string{"completion"}
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// usageLine is a command's line of the usage text: the command, its
// synopsis (words one space apart), then after two spaces or more its
// description, or none (then it is on the next line).
var usageLine = regexp.MustCompile(`^  (\S+)(?: \S+)*(?:\s{2,}(.*))?$`)

// summary is a command's one-line description for zsh, from the usage
// text.
func summary(cmd string) string {
	if cmd == "completion" {
		return "print a shell completion script (bash or zsh)"
	}
	lines := strings.Split(usage, "\n")
	for i, l := range lines {
		m := usageLine.FindStringSubmatch(l)
		if m == nil || m[1] != cmd {
			continue
		}
		// The description with its continuation lines (indented further),
		// up to its first parenthesis or semicolon.
		desc := m[2]
		for _, c := range lines[i+1:] {
			if !strings.HasPrefix(c, "    ") {
				break
			}
			desc += " " + strings.TrimSpace(c)
		}
		if j := strings.IndexAny(desc, "(;"); j > 12 {
			desc = desc[:j]
		}
		return strings.TrimRight(strings.TrimSpace(desc), ",")
	}
	return cmd
}

// completion prints the completion script of shell (`xdprouterctl
// completion bash|zsh`): commands, global and per-command flags, files for
// --config, port names of /sys/class/net for lookup --in.
func completion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: xdprouterctl completion bash|zsh")
		return 2
	}
	switch args[0] {
	case "bash":
		io.WriteString(stdout, bashCompletion())
	case "zsh":
		io.WriteString(stdout, zshCompletion())
	default:
		fmt.Fprintf(stderr, "xdprouterctl completion: unknown shell %q (bash or zsh)\n", args[0])
		return 2
	}
	return 0
}

func bashCompletion() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for xdprouterctl.
# Install: xdprouterctl completion bash > /etc/bash_completion.d/xdprouterctl
# or, for this shell only: source <(xdprouterctl completion bash)
_xdprouterctl() {
    local cur prev cmd="" i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            %s) ((i++)) ;;
            -*) ;;
            *) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$prev" in
        --config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --in) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
        --proto) COMPREPLY=($(compgen -W "tcp udp icmp icmpv6" -- "$cur")); return ;;
        %s) return ;;
    esac
    if [[ -z "$cmd" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "%s" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "%s" -- "$cur"))
        fi
        return
    fi
    case "$cmd" in
`, strings.Join(valueFlags, "|"), strings.Join(valueFlagsOf("--config", "--in", "--proto"), "|"),
		strings.Join(globalFlags, " "), strings.Join(commandNames(), " "))
	for _, c := range commandNames() {
		words := commandFlags(c)
		if c == "completion" {
			words = []string{"bash", "zsh"}
		}
		if len(words) == 0 {
			continue
		}
		fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c, strings.Join(words, " "))
	}
	b.WriteString(`    esac
}
complete -F _xdprouterctl xdprouterctl
`)
	return b.String()
}

// valueFlagsOf is every flag taking a value (lookup's included), except
// those named (they complete their value).
func valueFlagsOf(except ...string) []string {
	all := slices.Concat(valueFlags, commandFlags("lookup"))
	var out []string
	for _, f := range all {
		if !slices.Contains(except, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString(`#compdef xdprouterctl
# zsh completion for xdprouterctl.
# Install: xdprouterctl completion zsh > "${fpath[1]}/_xdprouterctl"
# or, for this shell only: source <(xdprouterctl completion zsh)
_xdprouterctl() {
    local curcontext="$curcontext" state line
    local -a commands
    commands=(
`)
	for _, c := range commandNames() {
		fmt.Fprintf(&b, "        %s\n", zshQuote(c+":"+summary(c)))
	}
	b.WriteString(`    )
    _arguments -C \
        '--config[the daemon configuration file]:file:_files' \
        '--api[daemon API address]:address:' \
        '--json[print JSON]' \
        '1:command:->command' \
        '*::arg:->args'
    case $state in
    command)
        _describe -t commands 'xdprouterctl command' commands ;;
    args)
        case $words[1] in
        stats)
            _arguments \
                '--watch[per-second rates, refreshed until interrupted]' \
                '--interval[refresh interval]:duration (1s, 500ms):' \
                '--count[reports to print, then exit]:number:' ;;
        lookup)
            _arguments \
                '1:destination address:' \
                '--from[source address]:address:' \
                '--in[ingress port]:port:_net_interfaces' \
                '--proto[protocol]:protocol:(tcp udp icmp icmpv6)' \
                '--sport[source port]:port:' \
                '--dport[destination port]:port:' \
                '--tos[TOS byte]:tos:' \
                '--ttl[TTL of the explained frame]:ttl:' \
                '--size[IP length of the explained frame]:bytes:' ;;
        completion)
            _values 'shell' bash zsh ;;
        esac ;;
    esac
}
if [ "$funcstack[1]" = "_xdprouterctl" ]; then
    _xdprouterctl "$@"
else
    compdef _xdprouterctl xdprouterctl
fi
`)
	return b.String()
}

// zshQuote quotes s for a zsh array element ('...', ' doubled; : in the
// name part would need escaping, none has one).
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
