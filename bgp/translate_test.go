package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/xdprouter/xdprouter/config"
)

func fullConfig() *config.Config {
	return &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		API:    config.API{GRPCListen: "127.0.0.1:50051"},
		BGP: config.BGP{
			ListenPort:       1179,
			ListenAddresses:  []string{"192.0.2.254", "2001:db8::fe"},
			UseMultiplePaths: true,
		},
		Networks: []config.Network{{Prefix: "198.51.100.0/24"}, {Prefix: "2001:db8:100::1/48"}},
		Neighbors: []config.Neighbor{
			{
				Address: "192.0.2.1", PeerASN: 65001, Description: "upstream-a",
				Import: "upstream-in", Export: "accept-all",
				MaxPrefixes: 1500000, Passive: true, Multihop: 2, Password: "s3cret",
				LocalAddress: "192.0.2.254", Port: 1179,
				Families: []string{"ipv4-unicast", "ipv6-unicast"},
				HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 5,
			},
			{Address: "192.0.2.2", PeerASN: 65000},                          // iBGP, defaults
			{Address: "2001:db8::2", PeerASN: 65002, Import: "upstream-in"}, // eBGP v6, export defaulted
		},
		PrefixSets: []config.PrefixSet{
			{Name: "bogons", Prefixes: []string{"10.0.0.0/8 8..32", "192.168.0.0/16"}},
		},
		NeighborSets: []config.NeighborSet{
			{Name: "v4-upstreams", Addresses: []string{"192.0.2.1", "192.0.2.0/30"}},
		},
		CommunitySets: []config.CommunitySet{
			{Name: "blackhole", Communities: []string{"65535:666"}},
		},
		Policies: []config.Policy{{
			Name: "upstream-in",
			Statements: []config.Statement{
				{Name: "no-bogons", MatchPrefixSet: "bogons", Action: "reject"},
				{Name: "v4-only-pref", MatchNeighborSet: "v4-upstreams", SetLocalPref: 200, Action: "next"},
				{Name: "not-v4", MatchNeighborSet: "v4-upstreams", MatchSetOptions: "invert", SetMED: 50, Action: "next"},
				{Name: "tag", MatchCommunitySet: "blackhole", MatchSetOptions: "invert", AddCommunity: []string{"65000:1"}, Action: "accept"},
			},
		}},
	}
}

func TestTranslate(t *testing.T) {
	p, err := translate(fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	v4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	v6 := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	scope := func(a string) *api.MatchSet {
		return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "xdprouter-nbr-" + a}
	}
	catchAll := func(pol string, nbr string, a api.RouteAction) *api.Statement {
		return &api.Statement{
			Name:       pol + "-default",
			Conditions: &api.Conditions{NeighborSet: scope(nbr)},
			Actions:    &api.Actions{RouteAction: a},
		}
	}
	policy := func(name string) proto.Message {
		for _, p := range p.policies {
			if p.Name == name {
				return p
			}
		}
		return nil
	}
	set := func(name string) proto.Message {
		for _, d := range p.definedSets {
			if d.Name == name {
				return d
			}
		}
		return nil
	}
	const (
		imp1 = "xdprouter-import-192.0.2.1-upstream-in"
		imp3 = "xdprouter-import-2001:db8::2-upstream-in"
	)
	tests := []struct {
		name      string
		got, want proto.Message
	}{
		{"global", p.global, &api.Global{
			Asn: 65000, RouterId: "192.0.2.254", ListenPort: 1179,
			ListenAddresses: []string{"192.0.2.254", "2001:db8::fe"}, UseMultiplePaths: true,
		}},
		{"peer with every option", p.peers[0], &api.Peer{
			Conf:         &api.PeerConf{NeighborAddress: "192.0.2.1", PeerAsn: 65001, Description: "upstream-a", AuthPassword: "s3cret"},
			Transport:    &api.Transport{PassiveMode: true, RemotePort: 1179, LocalAddress: "192.0.2.254"},
			Timers:       &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 5, IdleHoldTimeAfterReset: 5}},
			EbgpMultihop: &api.EbgpMultihop{Enabled: true, MultihopTtl: 2},
			AfiSafis: []*api.AfiSafi{
				{Config: &api.AfiSafiConfig{Family: v4, Enabled: true}, PrefixLimits: &api.PrefixLimit{Family: v4, MaxPrefixes: 1500000}},
				{Config: &api.AfiSafiConfig{Family: v6, Enabled: true}, PrefixLimits: &api.PrefixLimit{Family: v6, MaxPrefixes: 1500000}},
			},
		}},
		{"ibgp peer with defaults", p.peers[1], &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: "192.0.2.2", PeerAsn: 65000},
			Transport: &api.Transport{},
			Timers:    &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: config.DefaultIdleHoldAfterReset}},
			AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: v4, Enabled: true}}},
		}},
		{"v6 peer family from address", p.peers[2], &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: "2001:db8::2", PeerAsn: 65002},
			Transport: &api.Transport{},
			Timers:    &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: config.DefaultIdleHoldAfterReset}},
			AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: v6, Enabled: true}}},
		}},
		{"prefix set with and without range", set("bogons"), &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: "bogons",
			Prefixes: []*api.Prefix{
				{IpPrefix: "10.0.0.0/8", MaskLengthMin: 8, MaskLengthMax: 32},
				{IpPrefix: "192.168.0.0/16", MaskLengthMin: 16, MaskLengthMax: 16},
			},
		}},
		{"neighbor set", set("v4-upstreams"), &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: "v4-upstreams",
			List: []string{"192.0.2.1/32", "192.0.2.0/30"},
		}},
		{"community set", set("blackhole"), &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_COMMUNITY, Name: "blackhole", List: []string{"65535:666"},
		}},
		{"per-neighbor scope set v6", set("xdprouter-nbr-2001:db8::2"), &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: "xdprouter-nbr-2001:db8::2", List: []string{"2001:db8::2/128"},
		}},
		{"named import policy, neighbor in the set", policy(imp1), &api.Policy{Name: imp1, Statements: []*api.Statement{
			{Name: imp1 + "-no-bogons",
				Conditions: &api.Conditions{NeighborSet: scope("192.0.2.1"), PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "bogons"}},
				Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}},
			{Name: imp1 + "-v4-only-pref",
				Conditions: &api.Conditions{NeighborSet: scope("192.0.2.1")},
				Actions:    &api.Actions{LocalPref: &api.LocalPrefAction{Value: 200}}},
			// "not-v4" dropped: 192.0.2.1 is in v4-upstreams and the match is inverted.
			{Name: imp1 + "-tag",
				Conditions: &api.Conditions{NeighborSet: scope("192.0.2.1"), CommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: "blackhole"}},
				Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
					Community: &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: []string{"65000:1"}}}},
			catchAll(imp1, "192.0.2.1", api.RouteAction_ROUTE_ACTION_REJECT),
		}}},
		{"named import policy, neighbor not in the set", policy(imp3), &api.Policy{Name: imp3, Statements: []*api.Statement{
			{Name: imp3 + "-no-bogons",
				Conditions: &api.Conditions{NeighborSet: scope("2001:db8::2"), PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: "bogons"}},
				Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}},
			{Name: imp3 + "-not-v4",
				Conditions: &api.Conditions{NeighborSet: scope("2001:db8::2")},
				Actions:    &api.Actions{Med: &api.MedAction{Type: api.MedAction_TYPE_REPLACE, Value: 50}}},
			{Name: imp3 + "-tag",
				Conditions: &api.Conditions{NeighborSet: scope("2001:db8::2"), CommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: "blackhole"}},
				Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
					Community: &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: []string{"65000:1"}}}},
			catchAll(imp3, "2001:db8::2", api.RouteAction_ROUTE_ACTION_REJECT),
		}}},
		{"built-in accept-all", policy("xdprouter-export-192.0.2.1-accept-all"), &api.Policy{
			Name:       "xdprouter-export-192.0.2.1-accept-all",
			Statements: []*api.Statement{catchAll("xdprouter-export-192.0.2.1-accept-all", "192.0.2.1", api.RouteAction_ROUTE_ACTION_ACCEPT)},
		}},
		{"iBGP defaults to accept-all import", policy("xdprouter-import-192.0.2.2-accept-all"), &api.Policy{
			Name:       "xdprouter-import-192.0.2.2-accept-all",
			Statements: []*api.Statement{catchAll("xdprouter-import-192.0.2.2-accept-all", "192.0.2.2", api.RouteAction_ROUTE_ACTION_ACCEPT)},
		}},
		{"eBGP defaults to reject-all export", policy("xdprouter-export-2001:db8::2-reject-all"), &api.Policy{
			Name:       "xdprouter-export-2001:db8::2-reject-all",
			Statements: []*api.Statement{catchAll("xdprouter-export-2001:db8::2-reject-all", "2001:db8::2", api.RouteAction_ROUTE_ACTION_REJECT)},
		}},
		{"global import assignment", p.importAssignment, &api.PolicyAssignment{
			Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT, // neighbors added at run time: RFC 8212
			Policies:      []*api.Policy{{Name: imp1}, {Name: "xdprouter-import-192.0.2.2-accept-all"}, {Name: imp3}, {Name: localImportPolicy}},
		}},
		{"own paths accepted on import", policy(localImportPolicy), &api.Policy{Name: localImportPolicy, Statements: []*api.Statement{{
			Name:       localImportPolicy + "-accept",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		}}}},
		{"global export assignment", p.exportAssignment, &api.PolicyAssignment{
			Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
			Policies: []*api.Policy{
				{Name: "xdprouter-export-192.0.2.1-accept-all"},
				{Name: "xdprouter-export-192.0.2.2-accept-all"},
				{Name: "xdprouter-export-2001:db8::2-reject-all"},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !proto.Equal(tt.got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", prototext.Format(tt.got), prototext.Format(tt.want))
			}
		})
	}
	wantNets := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")}
	if !slices.Equal(p.networks, wantNets) {
		t.Errorf("networks = %v, want %v", p.networks, wantNets)
	}
}

// Translation trusts a validated configuration: whatever it would
// otherwise trip over, config.Validate reports, naming the key.
func TestTranslateTrustsValidation(t *testing.T) {
	valid := func() *config.Config {
		c := fullConfig()
		c.Networks[1].Prefix = "2001:db8:100::/48" // translation masks it; validation wants it canonical
		c.ApplyDefaults()
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("fullConfig does not validate: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*config.Config)
		key    string
	}{
		{"unknown import policy", func(c *config.Config) { c.Neighbors[1].Import = "nope" }, "neighbor[1].import"},
		{"bad neighbor address", func(c *config.Config) { c.Neighbors[1].Address = "192.0.2.300" }, "neighbor[1].address"},
		{"bad family", func(c *config.Config) { c.Neighbors[0].Families = []string{"l2vpn-evpn"} }, "neighbor[0].families[0]"},
		{"bad local address family", func(c *config.Config) { c.Neighbors[0].LocalAddress = "::1" }, "neighbor[0].local-address"},
		{"bad prefix range", func(c *config.Config) { c.PrefixSets[0].Prefixes = []string{"10.0.0.0/8 4..12"} }, "prefix-set[0].prefixes[0]"},
		{"unknown prefix set", func(c *config.Config) { c.Policies[0].Statements[0].MatchPrefixSet = "x" }, "policy[0].statement[0].match-prefix-set"},
		{"bad action", func(c *config.Config) { c.Policies[0].Statements[0].Action = "drop" }, "policy[0].statement[0].action"},
		{"bad match option", func(c *config.Config) { c.Policies[0].Statements[0].MatchSetOptions = "all" }, "policy[0].statement[0].match-set-options"},
		{"built-in name", func(c *config.Config) { c.Policies[0].Name = "accept-all" }, "policy[0].name"},
		{"router id", func(c *config.Config) { c.Router.RouterID = "2001:db8::1" }, "router.router-id"},
		{"listen address", func(c *config.Config) { c.BGP.ListenAddresses = []string{"eth0"} }, "bgp.listen-addresses[0]"},
		{"network", func(c *config.Config) { c.Networks[0].Prefix = "300.0.0.0/8" }, "network[0].prefix"},
		{"duplicate neighbor", func(c *config.Config) { c.Neighbors[1].Address = "192.0.2.1" }, "neighbor[1].address"},
		{"multihop", func(c *config.Config) { c.Neighbors[0].Multihop = 256 }, "neighbor[0].multihop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.key+": ") {
				t.Fatalf("Validate() = %v, want an error for %s", err, tt.key)
			}
		})
	}
}
