package test

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bypass"
)

// TestBypassReported: an nftables forward chain added in the router's
// namespace while xdprouterd runs shows up in status, the metric and the
// log, and leaves them again when removed; an ip rule does not (XDP
// follows the rules: TestPolicyRoutingAgreesWithKernel).
func TestBypassReported(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (apt-get install nftables)")
	}
	r := newLab(t)
	// Namespaces inherit IPv4 rp_filter from the host's: start clean.
	for _, k := range []string{"all", "eth1", "eth2"} {
		if err := r.Sysctl("r", "net.ipv4.conf."+k+".rp_filter", "0"); err != nil {
			t.Fatal(err)
		}
	}
	r.start("")
	status := func() []bypass.Finding {
		var s api.Status
		if err := r.ctl(&s, "status"); err != nil {
			t.Fatal(err)
		}
		return s.Bypass
	}
	if fs := status(); len(fs) != 0 {
		t.Fatalf("clean router namespace: %+v", fs)
	}
	for _, args := range [][]string{
		{"nft", "add table inet t; add chain inet t fw { type filter hook forward priority 0; }; add rule inet t fw tcp dport 22 drop"},
		{"ip", "rule", "add", "from", "10.1.0.0/16", "lookup", "100"},
	} {
		if err := r.Run("r", args...); err != nil {
			t.Fatal(err)
		}
	}
	want := []bypass.Finding{
		{Kind: bypass.KindNFTForward, Detail: "nftables chain inet t fw (hook forward, 1 rule)", Count: 1},
	}
	// Notifications make it quick; the poll (10 s) is the upper bound.
	r.poll(15*time.Second, func() error {
		if fs := status(); !slices.Equal(fs, want) {
			return fmt.Errorf("status bypass %+v, want %+v", fs, want)
		}
		return nil
	})
	m := r.metrics()
	for _, s := range []string{`xdprouter_bypassed_policy{kind="nftables-forward"} 1`, `xdprouter_bypassed_policy{kind="rp-filter"} 0`} {
		if !strings.Contains(m, s) {
			t.Errorf("metrics lack %s", s)
		}
	}
	if out := r.daemon.Out.String(); !strings.Contains(out, "nftables chain inet t fw (hook forward, 1 rule) is not applied to packets XDP forwards") {
		t.Errorf("no WARN line for the chain in the log:\n%s", out)
	}
	for _, args := range [][]string{{"nft", "delete table inet t"}, {"ip", "rule", "del", "from", "10.1.0.0/16", "lookup", "100"}} {
		if err := r.Run("r", args...); err != nil {
			t.Fatal(err)
		}
	}
	r.poll(15*time.Second, func() error {
		if fs := status(); len(fs) != 0 {
			return fmt.Errorf("still reported: %+v", fs)
		}
		return nil
	})
}
