package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestManPage: every flag of xdprouterd is in docs/man/xdprouterd.8, and
// the page renders without warnings (where man-db is installed).
func TestManPage(t *testing.T) {
	page, err := os.ReadFile("../../docs/man/xdprouterd.8")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	run([]string{"-h"}, io.Discard, &help)
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help.String(), -1)
	if len(flags) < 5 {
		t.Fatalf("found %d flags in the usage:\n%s", len(flags), help.String())
	}
	for _, f := range flags {
		if roff := `\-\-` + strings.ReplaceAll(f[1], "-", `\-`); !bytes.Contains(page, []byte(roff)) {
			t.Errorf("docs/man/xdprouterd.8 does not document --%s (as %s)", f[1], roff)
		}
	}
	manWarnings(t, "../../docs/man/xdprouterd.8")
}

// manWarnings renders a page with man --warnings and fails on any warning.
func manWarnings(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("man"); err != nil {
		t.Logf("man not installed: %s not rendered", path)
		return
	}
	cmd := exec.Command("man", "--warnings", "-l", path)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("man --warnings -l %s: %v\n%s", path, err, stderr.String())
	}
}
