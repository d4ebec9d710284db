package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

const prBase = `[dataplane]
interfaces = ["eth1", "eth2", "eth3"]

[[vrf]]
name = "red"
table = 100
interfaces = ["eth3"]

[[policy-route]]
name = "cust-a"
from = "10.1.0.0/24"
next-hop = "10.3.0.2"

[[policy-route]]
name = "web"
to = "198.51.100.0/24"
in = "eth1"
protocol = "tcp"
sport = "1024-65534"
dport = 443
tos = 0x10
priority = 700
table = 300

[[policy-route]]
name = "drop"
action = "prohibit"

[[policy-route]]
name = "v6-strict"
from = "2001:db8:1::/48"
next-hop = "2001:db8:3::2"
fallback = "unreachable"
`

func TestPolicyRouteSpecs(t *testing.T) {
	c, err := Parse([]byte(prBase), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.FIB.PolicyTableBase != DefaultPolicyTableBase {
		t.Errorf("policy-table-base %d", c.FIB.PolicyTableBase)
	}
	specs, err := c.PolicyRouteSpecs()
	if err != nil || len(specs) != 4 {
		t.Fatalf("specs %+v, %v", specs, err)
	}
	a, web, drop, v6 := specs[0], specs[1], specs[2], specs[3]
	if a.Priority != 500 || a.From != netip.MustParsePrefix("10.1.0.0/24") || a.NextHop != netip.MustParseAddr("10.3.0.2") ||
		a.Fallback != "table" || !slices.Equal(a.Families, []int{4}) {
		t.Errorf("cust-a: %+v", a)
	}
	if web.Priority != 700 || web.Table != 300 || web.In != "eth1" || web.Protocol != 6 || web.TOS != 0x10 ||
		web.Sport != (route.PortRange{Lo: 1024, Hi: 65534}) || web.Dport != (route.PortRange{Lo: 443, Hi: 443}) ||
		!slices.Equal(web.Families, []int{4}) {
		t.Errorf("web: %+v", web)
	}
	if drop.Priority != 520 || drop.Reject != "prohibit" || !slices.Equal(drop.Families, []int{4, 6}) {
		t.Errorf("drop: %+v", drop)
	}
	if v6.Priority != 530 || v6.Fallback != "unreachable" || !slices.Equal(v6.Families, []int{6}) {
		t.Errorf("v6: %+v", v6)
	}
	if got := c.PolicyNextHops(); len(got) != 2 || got[0] != a.NextHop || got[1] != v6.NextHop {
		t.Errorf("PolicyNextHops %v", got)
	}
}

func TestPolicyRouteErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"no name", `name = "cust-a"` + "\n", "", "x.toml:9: policy-route[0].name: must be set"},
		{"duplicate name", `name = "web"`, `name = "cust-a"`, `x.toml:15: policy-route[1].name: "cust-a" is already the name of policy-route[0]`},
		{"no action", `next-hop = "10.3.0.2"` + "\n", "", "x.toml:9: policy-route[0].next-hop: must be set (or table, or action)"},
		{"two actions", `table = 300`, `table = 300` + "\naction = \"blackhole\"", "x.toml:24: policy-route[1].action: a policy route has exactly one action: not both table and action"},
		{"bad from", `from = "10.1.0.0/24"`, `from = "10.1.0.1/24"`, `x.toml:11: policy-route[0].from: "10.1.0.1/24" has host bits set`},
		{"families", `next-hop = "10.3.0.2"`, `next-hop = "2001:db8::1"`, "x.toml:12: policy-route[0].next-hop: 2001:db8::1 is IPv6 but from is IPv4"},
		{"not a port", `in = "eth1"`, `in = "eth9"`, `x.toml:17: policy-route[1].in: "eth9" is not a router port`},
		{"bad protocol", `protocol = "tcp"`, `protocol = "tcpx"`, `x.toml:18: policy-route[1].protocol: "tcpx" is not a protocol`},
		{"ports without tcp", `protocol = "tcp"`, `protocol = "gre"`, "x.toml:19: policy-route[1].sport: protocol gre has no ports"},
		{"ports need protocol", `protocol = "tcp"` + "\n", "", `x.toml:19: policy-route[1].dport: needs protocol = "tcp", "udp" or "sctp"`},
		{"port range", `sport = "1024-65534"`, `sport = "1024-65535"`, `x.toml:19: policy-route[1].sport: "1024-65535": the kernel's rules take ports 1..65534`},
		{"icmp family", `protocol = "tcp"` + "\nsport = \"1024-65534\"\ndport = 443", `protocol = "icmpv6"`, "x.toml:18: policy-route[1].protocol: icmpv6 is IPv6 but to is IPv4"},
		{"tos ecn", "tos = 0x10", "tos = 0x11", "x.toml:21: policy-route[1].tos: 0x11 has ECN bits"},
		{"priority range", "priority = 700", "priority = 32766", "x.toml:22: policy-route[1].priority: must be 1..32765"},
		{"priority of a vrf", "priority = 700", "priority = 1001", "x.toml:22: policy-route[1].priority: 1001: priority 1001 is already vrf[0]'s"},
		{"priority of another", "priority = 700", "priority = 530", "x.toml:29: policy-route[3].priority: 530 (this route's default priority: set one): priority 530 is already policy-route[1]'s"},
		{"fallback takes two", "priority = 700", "priority = 531", "x.toml:29: policy-route[3].priority: 530 (this route's default priority: set one): priority 531 is already policy-route[1]'s"},
		{"table local", "table = 300", "table = 255", "x.toml:23: policy-route[1].table: 255 is the kernel's local table"},
		{"table of ours", "table = 300", "table = 20003", "x.toml:23: policy-route[1].table: 20003 is one of the tables of policy routes' next hops"},
		{"bad next hop", `next-hop = "10.3.0.2"`, `next-hop = "fe80::1"`, "x.toml:12: policy-route[0].next-hop: fe80::1 is not a unicast address"},
		{"fallback without next hop", `action = "prohibit"`, `action = "prohibit"` + "\nfallback = \"table\"", "x.toml:28: policy-route[2].fallback: only with next-hop"},
		{"bad fallback", `fallback = "unreachable"`, `fallback = "main"`, `x.toml:33: policy-route[3].fallback: "main" is not one of`},
		{"bad action", `action = "prohibit"`, `action = "drop"`, `x.toml:27: policy-route[2].action: "drop" is not one of "blackhole", "unreachable", "prohibit"`},
		{"base holds main", "[dataplane]", "[fib]\npolicy-table-base = 200\n[dataplane]", "x.toml:2: fib.policy-table-base: 200 .. 455 holds the kernel's table 253"},
		{"base holds a vrf", "[dataplane]", "[fib]\npolicy-table-base = 50\n[dataplane]", "x.toml:2: fib.policy-table-base: 50 .. 305 holds the kernel's table 253"},
		{"base holds fib.table", "[dataplane]", "[fib]\ntable = 20100\n[dataplane]", "fib.policy-table-base: 20000 .. 20255 holds fib.table 20100"},
		{"base holds vrf table", "table = 100", "table = 20001", "fib.policy-table-base: 20000 .. 20255 holds vrf[0]'s table 20001"},
		{"unknown key", `name = "drop"`, `name = "drop"` + "\nnexthop = \"1.2.3.4\"", "x.toml:27: policy-route[2].nexthop: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(prBase, tc.old) {
				t.Fatalf("base lacks %q", tc.old)
			}
			doc := strings.Replace(prBase, tc.old, tc.new, 1)
			_, err := Parse([]byte(doc), "x.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			allErrors(t, err)
		})
	}
}

func TestMirrorTables(t *testing.T) {
	c, err := Parse([]byte(prBase), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.MirrorTableFilter() != nil {
		t.Error("absent mirror-tables: want every table (nil filter)")
	}
	for _, tc := range []struct {
		doc     string
		in, out []int
	}{
		{"[fib]\nmirror-tables = []\n", nil, []int{100, 300}},
		{"[fib]\nmirror-tables = [300, 7]\n", []int{300, 7}, []int{100}},
	} {
		c, err := Parse([]byte(tc.doc+prBase), "x.toml")
		if err != nil {
			t.Fatal(err)
		}
		f := c.MirrorTableFilter()
		if f == nil {
			t.Fatalf("%q: nil filter", tc.doc)
		}
		for _, x := range tc.in {
			if !f(x) {
				t.Errorf("%q: %d not mirrored", tc.doc, x)
			}
		}
		for _, x := range tc.out {
			if f(x) {
				t.Errorf("%q: %d mirrored", tc.doc, x)
			}
		}
	}
	for doc, want := range map[string]string{
		"[fib]\nmirror-tables = [300, 255]\n": "x.toml:2: fib.mirror-tables[1]: 255 is the kernel's local table",
		"[fib]\nmirror-tables = [300, 300]\n": "x.toml:2: fib.mirror-tables[1]: table 300 is listed twice",
		"[fib]\nmirror-tables = [0]\n":        "x.toml:2: fib.mirror-tables[0]: 0 is not a kernel table",
	} {
		_, err := Parse([]byte(doc+prBase), "x.toml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
}
