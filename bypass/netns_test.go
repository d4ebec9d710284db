package bypass

import (
	"context"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/xdprouter/xdprouter/lab"
)

// newRouterNS makes a namespace "r" with a port eth1 (a veth to "peer"),
// removed when the test ends.
func newRouterNS(t *testing.T) *lab.Lab {
	t.Helper()
	if err := lab.Root(); err != nil {
		t.Skip("privileged test skipped: ", err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("privileged test skipped: needs nft (apt-get install nftables)")
	}
	l := lab.New("bypass")
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, err := range []error{l.AddNS("r"), l.AddNS("peer"), l.Link("r", "eth1", "peer", "eth0")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func kinds(fs []Finding) []string {
	var ks []string
	for _, f := range fs {
		ks = append(ks, f.Kind)
	}
	return ks
}

// TestCheckNamespace adds one of each thing XDP bypasses to a fresh
// namespace, checks that Check (run inside it) reports each, removes them
// and checks they are gone.
func TestCheckNamespace(t *testing.T) {
	l := newRouterNS(t)
	ports := []string{"eth1"}
	check := func() []Finding {
		t.Helper()
		var fs []Finding
		if err := l.Do("r", func() (err error) { fs, err = Check(ports); return err }); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	run := func(args ...string) {
		t.Helper()
		if err := l.Run("r", args...); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh namespace inherits IPv4 devconf (rp_filter) from the initial
	// one (net.core.devconf_inherit_init_net=0): start from 0, whatever the
	// host has, so that "clean" means clean.
	run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0")
	if fs := check(); len(fs) != 0 {
		t.Fatalf("fresh namespace: %+v", fs)
	}

	run("nft", "add table inet t; add chain inet t fw { type filter hook forward priority 0; }; add rule inet t fw tcp dport 22 drop")
	run("nft", "add table ip t4; add chain ip t4 pre { type filter hook prerouting priority 0; }; add rule ip t4 pre udp dport 53 counter; add rule ip t4 pre counter")
	// Hooked but empty with policy accept: changes nothing, not reported.
	run("nft", "add chain inet t fw2 { type filter hook forward priority 10; }")
	run("nft", "add table netdev n; add chain netdev n in { type filter hook ingress device eth1 priority 0; }; add rule netdev n in ip saddr 192.0.2.0/24 drop")
	run("ip", "rule", "add", "from", "10.1.0.0/16", "lookup", "100")
	run("ip", "-6", "rule", "add", "to", "2001:db8::/32", "lookup", "100", "priority", "200")
	run("sysctl", "-qw", "net.ipv4.conf.eth1.rp_filter=1")
	if _, err := exec.LookPath("iptables-nft"); err == nil {
		run("iptables-nft", "-A", "FORWARD", "-p", "tcp", "--dport", "23", "-j", "DROP")
	}

	fs := check()
	want := map[string]Finding{
		KindNFTForward:    {KindNFTForward, "nftables chain inet t fw (hook forward, 1 rule)", 1},
		KindNFTPrerouting: {KindNFTPrerouting, "nftables chain ip t4 pre (hook prerouting, 2 rules)", 2},
		KindNFTIngress:    {KindNFTIngress, "nftables chain netdev n in (hook ingress on eth1, 1 rule)", 1},
		KindRPFilter:      {KindRPFilter, "rp_filter=1 (strict) on eth1 (all=0, eth1=1)", 1},
	}
	if _, err := exec.LookPath("iptables-nft"); err == nil {
		want[KindIPTForward] = Finding{KindIPTForward, "iptables (nf_tables) table filter chain FORWARD (1 rule)", 1}
	}
	for _, w := range want {
		if !slices.Contains(fs, w) {
			t.Errorf("missing %+v", w)
		}
	}
	// ip rules are no finding: XDP follows them.
	if n := len(fs); n != len(want) {
		t.Errorf("%d findings, want %d: %+v", n, len(want), fs)
	}
	t.Logf("findings: %+v", fs)

	run("nft", "flush ruleset") // iptables-nft's tables too
	run("ip", "rule", "del", "from", "10.1.0.0/16", "lookup", "100")
	run("ip", "-6", "rule", "del", "priority", "200")
	run("sysctl", "-qw", "net.ipv4.conf.eth1.rp_filter=0")
	if fs := check(); len(fs) != 0 {
		t.Errorf("after removing everything: %+v", fs)
	}

	// all=2 makes every port loose, whatever the port says.
	run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2")
	if fs := check(); !slices.Equal(fs, []Finding{{KindRPFilter, "rp_filter=2 (loose) on eth1 (all=2, eth1=0)", 1}}) {
		t.Errorf("all=2: %+v", fs)
	}
}

// TestCheckLegacyNamespace loads a legacy iptables table with a FORWARD
// rule (when iptables-legacy is installed) and checks it is reported.
func TestCheckLegacyNamespace(t *testing.T) {
	l := newRouterNS(t)
	if _, err := exec.LookPath("iptables-legacy"); err != nil {
		t.Skip("needs iptables-legacy (apt-get install iptables)")
	}
	if err := l.Run("r", "iptables-legacy", "-A", "FORWARD", "-s", "10.9.0.0/16", "-j", "DROP"); err != nil {
		t.Skip("legacy iptables unusable on this kernel: ", err)
	}
	var fs []Finding
	if err := l.Do("r", func() (err error) { fs, err = Check(nil); return err }); err != nil {
		t.Fatal(err)
	}
	want := Finding{KindIPTLegacy, "iptables-legacy table filter chain FORWARD (1 rule)", 1}
	if !slices.Contains(fs, want) {
		t.Errorf("got %+v, want %+v among them", fs, want)
	}
	if err := l.Run("r", "iptables-legacy", "-F", "FORWARD"); err != nil {
		t.Fatal(err)
	}
	if err := l.Do("r", func() (err error) { fs, err = Check(nil); return err }); err != nil || slices.ContainsFunc(fs, func(f Finding) bool { return f.Kind == KindIPTLegacy }) {
		t.Errorf("after flush: %+v %v", fs, err)
	}
}

// TestWatcherNotices runs a Watcher on the namespace with a poll interval
// far beyond the test: it must see changes through the netlink
// notifications alone.
func TestWatcherNotices(t *testing.T) {
	l := newRouterNS(t)
	if err := l.Run("r", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0"); err != nil {
		t.Fatal(err)
	}
	ns, err := netns.GetFromName(l.NS("r"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var mu sync.Mutex
	var log strings.Builder
	changes := make(chan []Finding, 16)
	w := &Watcher{Ports: []string{"eth1"}, NetNS: int(ns), Every: time.Hour,
		Log:      slog.New(slog.NewTextHandler(&lockedWriter{&mu, &log}, nil)),
		OnChange: func(fs []Finding) { changes <- fs }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	next := func(what string) []Finding {
		t.Helper()
		select {
		case fs := <-changes:
			return fs
		case <-time.After(10 * time.Second):
			t.Fatalf("no change reported after %s", what)
			return nil
		}
	}
	if fs := next("start"); len(fs) != 0 {
		t.Fatalf("start: %+v", fs)
	}
	for _, step := range []struct {
		args []string
		want []string
	}{
		{[]string{"nft", "add table inet t; add chain inet t fw { type filter hook forward priority 0; policy drop; }"}, []string{KindNFTForward}},
		{[]string{"sysctl", "-qw", "net.ipv4.conf.eth1.rp_filter=1"}, []string{KindNFTForward, KindRPFilter}},
		{[]string{"nft", "delete table inet t"}, []string{KindRPFilter}},
	} {
		if err := l.Run("r", step.args...); err != nil {
			t.Fatal(err)
		}
		what := strings.Join(step.args, " ")
		if fs := next(what); !slices.Equal(kinds(fs), step.want) {
			t.Errorf("after %s: %+v, want kinds %v", what, fs, step.want)
		}
	}
	if got := kinds(w.Findings()); !slices.Equal(got, []string{KindRPFilter}) {
		t.Errorf("Findings() = %v", got)
	}
	mu.Lock()
	out := log.String()
	mu.Unlock()
	for _, s := range []string{"level=WARN", "is not applied to packets XDP forwards", "gone: nftables chain inet t fw"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
