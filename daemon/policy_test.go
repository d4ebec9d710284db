package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
)

func policyConfig(t *testing.T, routes string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(`[dataplane]
interfaces = ["eth1", "eth2"]
`+routes), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPolicyRules: the rules of each action, one per family, the
// fallback's second rule; next hops keep their tables across a reload and
// a new one takes the lowest free table.
func TestPolicyRules(t *testing.T) {
	c := policyConfig(t, `
[[policy-route]]
name = "a"
from = "10.1.0.0/24"
next-hop = "10.0.2.2"
fallback = "prohibit"

[[policy-route]]
name = "b"
in = "eth1"
action = "blackhole"

[[policy-route]]
name = "c"
to = "2001:db8::/32"
table = 300

[[policy-route]]
name = "d"
from = "10.2.0.0/24"
next-hop = "10.0.1.2"
`)
	pt := newPolicyTables(c)
	of := pt.assign(c)
	a, b := netip.MustParseAddr("10.0.2.2"), netip.MustParseAddr("10.0.1.2")
	if of[a] != 20000 || of[b] != 20001 {
		t.Fatalf("tables %v", of)
	}
	rules, err := policyRules(c, of)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.String())
	}
	want := []string{
		"ipv4 500: from 10.1.0.0/24 lookup 20000",
		"ipv4 501: from 10.1.0.0/24 prohibit",
		"ipv4 510: from all iif eth1 blackhole",
		"ipv6 510: from all iif eth1 blackhole",
		"ipv6 520: from all to 2001:db8::/32 lookup 300",
		"ipv4 530: from 10.2.0.0/24 lookup 20001",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rules[2].Action != fib.RuleBlackhole || rules[1].Action != fib.RuleProhibit {
		t.Errorf("actions: %+v", rules)
	}

	// Reload: "a" goes, a new next hop comes: "d" keeps 20001, the new
	// one takes 20000.
	c2 := policyConfig(t, `
[[policy-route]]
name = "d"
from = "10.2.0.0/24"
next-hop = "10.0.1.2"

[[policy-route]]
name = "e"
from = "10.3.0.0/24"
next-hop = "10.0.2.9"
`)
	of = pt.assign(c2)
	if of[b] != 20001 || of[netip.MustParseAddr("10.0.2.9")] != 20000 || len(of) != 2 {
		t.Errorf("after reload: %v", of)
	}
	nhs := policyNextHops(of)
	if len(nhs) != 2 || nhs[0].Table != 20000 || nhs[1].Addr != b {
		t.Errorf("sync input %+v", nhs)
	}
}
