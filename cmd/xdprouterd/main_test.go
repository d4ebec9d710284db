package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xdprouter.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	good := writeConfig(t, "[router]\nasn = 65000\nrouter-id = \"192.0.2.254\"\n\n[dataplane]\ninterfaces = [\"eth1\"]\n")
	bad := writeConfig(t, "[router]\nasn = 65000\nrouter-id = \"192.0.2.254\"\n\n[[neighbor]]\naddress = \"192.0.2.1\"\n\n[dataplane]\nxdp-mode = \"fast\"\nbogus = 1\n")
	tests := []struct {
		name string
		args []string
		code int
		want []string // substrings of stderr
	}{
		{"valid", []string{"--check", "--config", good}, 0, []string{good + ": ok"}},
		{"invalid: every problem, with file, line and key", []string{"--check", "--config", bad}, 2, []string{
			bad + ":5: neighbor[0].peer-asn", bad + ":9: dataplane.xdp-mode", bad + ":10: dataplane.bogus"}},
		{"invalid without --check: nothing is started", []string{"--config", bad}, 2, []string{"invalid configuration"}},
		{"missing file", []string{"--check", "--config", filepath.Join(t.TempDir(), "none.toml")}, 2, []string{"none.toml"}},
		{"stray argument", []string{"--config", good, "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"bad log level", []string{"--log-level", "loud", "--config", good}, 2, []string{"--log-level"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(tc.args, io.Discard, &stderr); code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); !strings.HasPrefix(out, "xdprouterd ") || !strings.Contains(out, "(commit ") {
		t.Errorf("--version printed %q", out)
	}
}

// TestExamples: every configuration under examples/ (the README's worked
// examples) passes --check, the README points at each of them, and every
// TOML excerpt of its worked examples is verbatim in one of them.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/*.toml (%v)", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, string(b))
	}
	_, section, ok := strings.Cut(string(readme), "\n## Worked examples")
	if !ok {
		t.Fatal(`README.md has no "## Worked examples" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	blocks := strings.Split(section, "```toml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("the worked examples show no TOML")
	}
	for _, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		if !slices.ContainsFunc(all, func(f string) bool { return strings.Contains(f, b) }) {
			t.Errorf("README's worked examples show TOML that is in no examples/*.toml:\n%s", b)
		}
	}
	for _, f := range files {
		name := "examples/" + filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run([]string{"--check", "--config", f}, io.Discard, &stderr); code != 0 {
				t.Errorf("--check exit %d:\n%s", code, stderr.String())
			}
			if !bytes.Contains(readme, []byte(name)) {
				t.Errorf("README.md does not mention %s", name)
			}
		})
	}
}
