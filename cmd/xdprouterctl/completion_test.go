package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/api"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	// No config and no daemon needed.
	if code := run(context.Background(), []string{"--config", "/nonexistent", "completion", shell}, &stdout, &stderr); code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, stderr.String())
	}
	return stdout.String()
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion"}, {"completion", "fish"}, {"completion", "bash", "zsh"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "bash") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

// TestBashCompletion runs the bash script's function as bash would on Tab.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "xdprouterctl.bash")
	if err := os.WriteFile(script, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) []string {
		t.Helper()
		// COMP_WORDS as bash splits the line; a trailing space starts a
		// new, empty word.
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			string(rune('0'+len(words)-1)) + "\n_xdprouterctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"xdprouterctl st", []string{"stats", "status"}},
		{"xdprouterctl --json ro", []string{"routes"}},
		{"xdprouterctl --api 127.0.0.1:9179 n", []string{"neighbors", "nexthops"}},
		{"xdprouterctl --", []string{"--config", "--api", "--json"}},
		{"xdprouterctl stats --", []string{"--watch", "--interval", "--count"}},
		{"xdprouterctl stats --watch --interval ", nil},
		{"xdprouterctl completion ", []string{"bash", "zsh"}},
		{"xdprouterctl lookup 192.0.2.1 --d", []string{"--dport"}},
		{"xdprouterctl lookup 192.0.2.1 --proto u", []string{"udp"}},
		{"xdprouterctl lookup 192.0.2.1 --in l", []string{"lo"}},
	} {
		got := complete(tc.line)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q: %q, want %q", tc.line, got, tc.want)
		}
	}
	// Every command completes.
	all := complete("xdprouterctl ")
	for c := range commands {
		if !strings.Contains(" "+strings.Join(all, " ")+" ", " "+c+" ") {
			t.Errorf("command %s not offered: %v", c, all)
		}
	}
}

func TestZshCompletion(t *testing.T) {
	s := completionScript(t, "zsh")
	if !strings.HasPrefix(s, "#compdef xdprouterctl\n") {
		t.Errorf("no #compdef line:\n%s", s)
	}
	for c := range commands {
		if !strings.Contains(s, "'"+c+":") {
			t.Errorf("command %s missing:\n%s", c, s)
		}
	}
	for _, f := range append([]string{"--watch[", "--interval[", "--count[", "--config[", "--api[", "--json["}, flowFlags()...) {
		if !strings.Contains(s, "'"+f) {
			t.Errorf("flag %s missing", f)
		}
	}
	if strings.Contains(s, "'stats:stats'") || strings.Contains(s, "'stats:[") {
		t.Errorf("stats has no description:\n%s", s)
	}
	if zsh, err := exec.LookPath("zsh"); err == nil {
		cmd := exec.Command(zsh, "-n")
		cmd.Stdin = strings.NewReader(s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
}

func flowFlags() []string {
	var out []string
	for _, k := range api.FlowKeys {
		out = append(out, "--"+k+"[")
	}
	return out
}
