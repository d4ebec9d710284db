// Package test holds the integration tests: real namespaces, veth pairs,
// xdprouterd and xdprouterctl as processes, real XDP, real BGP peers.
// They need root and skip with a message without it, and under -short.
package test

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// bin holds the binaries built for this test run.
var bin string

func TestMain(m *testing.M) {
	flag.Parse() // testing.Short needs the flags
	if testing.Short() {
		// Even as root: -short (make unit) must not build namespaces, load
		// XDP programs or start daemons.
		fmt.Println("integration tests skipped: -short")
		os.Exit(0)
	}
	if err := lab.Root(); err != nil {
		fmt.Println("integration tests skipped:", err)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "xdprouter-bin")
	if err != nil {
		panic(err)
	}
	bin = dir
	for _, c := range []string{"xdprouterd", "xdprouterctl"} {
		args := []string{"build", "-o", filepath.Join(dir, c)}
		if raceEnabled && c == "xdprouterd" {
			args = append(args, "-race") // a data race fails its test (exit status 66)
		}
		out, err := exec.Command("go", append(args, "../cmd/"+c)...).CombinedOutput()
		if err != nil {
			fmt.Printf("build %s: %v\n%s", c, err, out)
			os.Exit(1)
		}
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "gobgp"), "github.com/osrg/gobgp/v4/cmd/gobgp").CombinedOutput(); err != nil {
		fmt.Printf("build gobgp: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// router is a lab with xdprouterd running in "r".
type router struct {
	*lab.Lab
	t      *testing.T
	daemon *lab.Proc
	ports  []string
	config string // path of the daemon's config file
	// edit, if set, rewrites the config file start writes.
	edit func(string) string
}

// newLab builds the basic h1 — r — h2 lab, removed when the test ends.
func newLab(t *testing.T) *router {
	t.Helper()
	l := lab.New("xt")
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	if err := l.Basic(); err != nil {
		t.Fatal(err)
	}
	return &router{Lab: l, t: t, ports: []string{"eth1", "eth2"}}
}

// start runs xdprouterd in r with the basic config plus extra TOML and
// waits until its API answers.
func (r *router) start(extra string) {
	t := r.t
	t.Helper()
	cfg, err := lab.DaemonConfigFile(t.TempDir(), r.ports, extra)
	if err != nil {
		t.Fatal(err)
	}
	if r.edit != nil {
		b, err := os.ReadFile(cfg)
		if err == nil {
			err = os.WriteFile(cfg, []byte(r.edit(string(b))), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.config = cfg
	level := cmp.Or(os.Getenv("XDPROUTER_TEST_LOG_LEVEL"), "info") // debug: GoBGP's BFD and FSM transitions
	p, err := r.Start("r", "xdprouterd", filepath.Join(bin, "xdprouterd"), "--config", cfg, "--log-level", level)
	if err != nil {
		t.Fatal(err)
	}
	r.daemon = p
	t.Cleanup(func() {
		// A daemon the test killed (SIGKILL) is not a failure.
		err := p.Stop(10 * time.Second)
		ours, upstream := races(p.Out.String())
		if upstream > 0 {
			t.Logf("the race detector reported %d data race(s) inside GoBGP (both accesses in its code, not fixable here)", upstream)
		}
		if ours > 0 {
			t.Errorf("the race detector reported %d data race(s) in xdprouterd", ours)
		}
		raceExit := err != nil && strings.Contains(err.Error(), "exit status 66") && ours == 0 && upstream > 0
		if err != nil && !strings.Contains(err.Error(), "signal: killed") && !raceExit {
			t.Errorf("xdprouterd did not stop cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("xdprouterd output:\n%s", p.Out.String())
		}
	})
	r.poll(10*time.Second, func() error {
		if exited, err := p.Exited(); exited {
			t.Fatalf("xdprouterd exited: %v\n%s", err, p.Out.String())
		}
		var s []bpf.StatCounter
		return r.ctl(&s, "stats")
	})
}

// ctl runs xdprouterctl --json in r and decodes its output into out.
func (r *router) ctl(out any, args ...string) error {
	return r.Ctl("r", filepath.Join(bin, "xdprouterctl"), out, args...)
}

func (r *router) poll(timeout time.Duration, f func() error) {
	r.t.Helper()
	if err := lab.Poll(context.Background(), timeout, f); err != nil {
		r.t.Fatal(err)
	}
}

// counter returns the XDP packet counter for action/reason.
func (r *router) counter(action, reason string) uint64 {
	r.t.Helper()
	var s []bpf.StatCounter
	if err := r.ctl(&s, "stats"); err != nil {
		r.t.Fatal(err)
	}
	for _, c := range s {
		if c.Action == action && c.Reason == reason {
			return c.Packets
		}
	}
	r.t.Fatalf("no counter %s/%s in %+v", action, reason, s)
	return 0
}

// lookup returns the XDP decision for addr.
func (r *router) lookup(addr string) bpf.Decision {
	r.t.Helper()
	var d bpf.Decision
	if err := r.ctl(&d, "lookup", addr); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// with returns r reporting to t (for subtests).
func (r *router) with(t *testing.T) *router {
	c := *r
	c.t = t
	return &c
}

// metrics scrapes xdprouterd's /metrics inside r.
func (r *router) metrics() string {
	r.t.Helper()
	var body []byte
	err := r.Do("r", func() error {
		c, err := net.Dial("tcp", "127.0.0.1:"+lab.MetricsPort)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		body, err = io.ReadAll(c)
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return string(body)
}

// races counts the race detector's reports in out: ours, and upstream
// ones where both racing accesses are in GoBGP's own code (e.g. its RTR
// client's goroutine writing the state that ListRpki reads, right after a
// cache connects), which only GoBGP can fix.
func races(out string) (ours, upstream int) {
	reports := strings.Split(out, "WARNING: DATA RACE")[1:]
	for _, r := range reports {
		r, _, _ = strings.Cut(r, "==================")
		lines := strings.Split(r, "\n")
		accesses, inGoBGP := 0, 0
		for i, l := range lines {
			l = strings.TrimSpace(l)
			if !strings.Contains(l, " at 0x") || !strings.Contains(l, " by ") || i+1 >= len(lines) {
				continue
			}
			accesses++
			if strings.HasPrefix(strings.TrimSpace(lines[i+1]), "github.com/osrg/gobgp/") {
				inGoBGP++
			}
		}
		if accesses >= 2 && inGoBGP == accesses {
			upstream++
		} else {
			ours++
		}
	}
	return ours, upstream
}
