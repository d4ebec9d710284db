package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/api"
)

// TestManPage: every command and flag of xdprouterctl (and every lookup
// flag) is in docs/man/xdprouterctl.8, and the pages render without
// warnings (where man-db is installed), gobgp.1 too.
func TestManPage(t *testing.T) {
	page, err := os.ReadFile("../../docs/man/xdprouterctl.8")
	if err != nil {
		t.Fatal(err)
	}
	roff := func(s string) []byte { return []byte(strings.ReplaceAll(s, "-", `\-`)) }
	for name := range commands {
		if !bytes.Contains(page, []byte(".B "+name)) && !bytes.Contains(page, []byte(".BI "+name)) && !bytes.Contains(page, []byte(".BR "+name)) {
			t.Errorf("docs/man/xdprouterctl.8 has no entry for the command %q", name)
		}
	}
	var help bytes.Buffer
	run(context.Background(), []string{"-h"}, io.Discard, &help)
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help.String(), -1)
	if len(flags) < 3 {
		t.Fatalf("found %d flags in the usage:\n%s", len(flags), help.String())
	}
	for _, f := range flags {
		if !bytes.Contains(page, roff("--"+f[1])) {
			t.Errorf("docs/man/xdprouterctl.8 does not document --%s", f[1])
		}
	}
	for _, k := range api.FlowKeys {
		if !bytes.Contains(page, roff("--"+k)) {
			t.Errorf("docs/man/xdprouterctl.8 does not document lookup --%s", k)
		}
	}
	for _, p := range []string{"../../docs/man/xdprouterctl.8", "../../docs/man/gobgp.1"} {
		if _, err := exec.LookPath("man"); err != nil {
			t.Logf("man not installed: %s not rendered", p)
			continue
		}
		cmd := exec.Command("man", "--warnings", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man --warnings -l %s: %v\n%s", p, err, stderr.String())
		}
	}
}
