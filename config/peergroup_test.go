package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Peer groups and dynamic neighbors: each bad config names its key and
// the line ("#<" marks it), as TestValidation's cases.
var peerGroupCases = []struct {
	name, body, key, msg string
}{
	{"unknown peer group", `[[neighbor]]
address = "192.0.2.1"
peer-asn = 65001
peer-group = "nope" #<
`, "neighbor[0].peer-group", `no [[peer-group]] is named "nope"`},
	{"peer-asn nowhere", `[[peer-group]]
name = "g"
hold-time = 9
[[neighbor]] #<
address = "192.0.2.1"
peer-group = "g"
`, "neighbor[0].peer-asn", `must be set (here or in its [[peer-group]] "g")`},
	{"address in a group", `[[peer-group]]
name = "g"
address = "192.0.2.1" #<
`, "peer-group[0].address", "not a peer-group key"},
	{"interface in a group", `[[peer-group]]
name = "g"
interface = "eth1" #<
`, "peer-group[0].interface", "not a peer-group key"},
	{"group names unique", `[[peer-group]]
name = "g"
[[peer-group]]
name = "g" #<
`, "peer-group[1].name", `already the name of peer-group[0]`},
	{"inherited value reported at the group", `[[peer-group]]
name = "g"
peer-asn = 65001
hold-time = 2 #<
[[neighbor]]
address = "192.0.2.1"
peer-group = "g"
[[neighbor]]
address = "192.0.2.2"
peer-group = "g"
`, "peer-group[0].hold-time", "3..65535"},
	{"inherited list element reported at the group", `[[peer-group]]
name = "g"
peer-asn = 65001
families = ["ipv4-unicast", "ipv5"] #<
[[neighbor]]
address = "192.0.2.1"
peer-group = "g"
`, "peer-group[0].families[1]", "not one of"},
	{"unknown range group", `[[dynamic-neighbor]]
prefix = "10.1.0.0/24"
peer-group = "nope" #<
`, "dynamic-neighbor[0].peer-group", `no [[peer-group]] is named "nope"`},
	{"range without group", `[[dynamic-neighbor]] #<
prefix = "10.1.0.0/24"
`, "dynamic-neighbor[0].peer-group", "must be set"},
	{"range host bits", `[[peer-group]]
name = "g"
[[dynamic-neighbor]]
prefix = "10.1.0.1/24" #<
peer-group = "g"
`, "dynamic-neighbor[0].prefix", "host bits"},
	{"ranges overlap", `[[peer-group]]
name = "g"
[[dynamic-neighbor]]
prefix = "10.1.0.0/16"
peer-group = "g"
[[dynamic-neighbor]]
prefix = "10.1.2.0/24" #<
peer-group = "g"
`, "dynamic-neighbor[1].prefix", "overlaps dynamic-neighbor[0].prefix 10.1.0.0/16"},
	{"limit zero", `[[peer-group]]
name = "g"
[[dynamic-neighbor]]
prefix = "10.1.0.0/24"
peer-group = "g"
limit = 0 #<
`, "dynamic-neighbor[0].limit", "at least 1"},
	{"vrf in a dynamic group", `[[vrf]]
name = "v"
table = 100
[[peer-group]]
name = "g"
vrf = "v" #<
[[dynamic-neighbor]]
prefix = "10.1.0.0/24"
peer-group = "g"
`, "peer-group[0].vrf", "not supported in a peer group of [[dynamic-neighbor]]s"},
	{"bad peer-asn in a group", `[[peer-group]]
name = "g"
peer-asn = 4294967295 #<
`, "peer-group[0].peer-asn", "must be 1..4294967294"},
}

func TestPeerGroupValidation(t *testing.T) {
	for _, tc := range peerGroupCases {
		t.Run(tc.name, func(t *testing.T) {
			src := header + tc.body
			wantLine := 0
			for i, l := range strings.Split(src, "\n") {
				if strings.Contains(l, "#<") {
					wantLine = i + 1
				}
			}
			_, err := Parse([]byte(src), "t.toml")
			if err == nil {
				t.Fatal("no error")
			}
			n := 0
			for _, e := range allErrors(t, err) {
				if e.Key == tc.key && strings.Contains(e.Msg, tc.msg) {
					n++
					if want := fmt.Sprintf("t.toml:%d: %s: ", wantLine, tc.key); !strings.HasPrefix(e.Error(), want) {
						t.Errorf("error %q, want prefix %q", e, want)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d errors for %s containing %q, want 1; got:\n%v", n, tc.key, tc.msg, err)
			}
		})
	}
}

// TestPeerGroupInherit: a member takes the keys it leaves out, keeps those
// it writes (an explicit zero too), and gets defaults from what it ends
// up with (eBGP default policies from the inherited peer-asn).
func TestPeerGroupInherit(t *testing.T) {
	c, err := Parse([]byte(header+`
[[peer-group]]
name = "g"
peer-asn = 65001
import = "accept-all"
hold-time = 9
families = ["ipv4-unicast"]
description = "rack"
[[neighbor]]
address = "192.0.2.1"
peer-group = "g"
[[neighbor]]
address = "192.0.2.2"
peer-group = "g"
hold-time = 0
keepalive-interval = 0
import = "reject-all"
peer-asn = 65000
[[dynamic-neighbor]]
prefix = "10.1.0.0/24"
peer-group = "g"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Neighbors[0], c.Neighbors[1]
	if a.PeerASN != 65001 || a.Import != "accept-all" || a.Export != PolicyRejectAll || a.HoldTime != 9 || a.KeepaliveInterval != 3 || a.Description != "rack" || !slices.Equal(a.Families, []string{"ipv4-unicast"}) {
		t.Errorf("member inherits: %+v", a)
	}
	if b.PeerASN != 65000 || b.Import != PolicyRejectAll || b.Export != PolicyAcceptAll || b.HoldTime != 0 || b.KeepaliveInterval != 0 {
		t.Errorf("member keeps its own keys (iBGP default export): %+v", b)
	}
	// The slice is the member's own.
	c.Neighbors[0].Families[0] = "x"
	if c.PeerGroups[0].Families[0] != "ipv4-unicast" {
		t.Error("the member shares the group's families")
	}
	if d := c.DynamicNeighbors[0]; d.Limit != DefaultDynamicNeighborLimit {
		t.Errorf("limit default %d", d.Limit)
	}
	if g := c.PeerGroups[0]; g.HoldTime != 9 || g.KeepaliveInterval != 3 || g.ConnectRetry != DefaultConnectRetry || g.Export != PolicyRejectAll {
		t.Errorf("group defaults: %+v", g)
	}
}

// TestPeerGroupAnyAS: a group for dynamic neighbors may leave peer-asn
// out; its policies then default to reject-all.
func TestPeerGroupAnyAS(t *testing.T) {
	c, err := Parse([]byte(header+`
[[peer-group]]
name = "servers"
[[dynamic-neighbor]]
prefix = "2001:db8:1::/64"
peer-group = "servers"
limit = 3
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if g := c.PeerGroups[0]; g.PeerASN != 0 || g.Import != PolicyRejectAll || g.Export != PolicyRejectAll {
		t.Errorf("group: %+v", g)
	}
}
