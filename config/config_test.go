package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The minimal config of ARCHITECTURE.md, verbatim.
const minimal = `[router]
asn = 65000
router-id = "192.0.2.254"

[api]
grpc-listen = "127.0.0.1:50051"      # GoBGP gRPC, for the gobgp CLI
metrics-listen = "127.0.0.1:9179"    # Prometheus /metrics

[dataplane]
interfaces = ["eth1", "eth2"]        # router ports that get the XDP program
xdp-mode = "auto"                    # native | generic | auto
pin-path = "/sys/fs/bpf/xdprouter"   # pinned maps and links (hitless restart)

[fib]
table = 254                          # kernel table for learned routes

[[neighbor]]
address = "192.0.2.1"                # v4 address: ipv4-unicast session; v6 address: ipv6-unicast
peer-asn = 65001
description = "upstream-a"
import = "accept-all"                # a policy name, or accept-all / reject-all
export = "reject-all"                # eBGP without a policy: reject-all both ways (RFC 8212)
max-prefixes = 1500000
`

// allErrors flattens an errors.Join tree into its *Error leaves.
func allErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %q (%T) is not a *config.Error", err, err)
		}
		out = append(out, e)
	}
	walk(err)
	return out
}

func TestMinimal(t *testing.T) {
	c, err := Parse([]byte(minimal), "min.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.File != "min.toml" || !c.BGPEnabled() {
		t.Errorf("File = %q, BGPEnabled = %v", c.File, c.BGPEnabled())
	}
	if c.FIB.Metric != 20 || c.FIB.Table != 254 || c.BGP.ListenPort != 179 {
		t.Errorf("fib/bgp defaults: %+v %+v", c.FIB, c.BGP)
	}
	n := c.Neighbors[0]
	want := Neighbor{
		Address: "192.0.2.1", PeerASN: 65001, Description: "upstream-a",
		Import: "accept-all", Export: "reject-all", MaxPrefixes: 1500000,
		Port: 179, Families: []string{"ipv4-unicast"},
		HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 120, IdleHoldAfterReset: 5, MaxPrefixesWarning: 90,
		GracefulRestart: true, RestartTime: 120, BFDMinRx: 300, BFDMinTx: 300, BFDMultiplier: 3, FlowspecValidate: true,
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("neighbor:\n got %+v\nwant %+v", n, want)
	}
	if n.Addr() != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("Addr() = %v", n.Addr())
	}
}

// TestUnnumberedDefaults: an unnumbered neighbor has no address and both
// unicast families by default.
func TestUnnumberedDefaults(t *testing.T) {
	c, err := Parse([]byte(header+"[[neighbor]]\ninterface = \"eth1\"\npeer-asn = 65001\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	n := c.Neighbors[0]
	if n.Interface != "eth1" || n.Addr().IsValid() || !slices.Equal(n.Families, []string{FamilyIPv4Unicast, FamilyIPv6Unicast}) {
		t.Errorf("neighbor: %+v", n)
	}
}

func TestDefaults(t *testing.T) {
	src := `[router]
asn = 65000
router-id = "192.0.2.254"

[[network]]
prefix = "198.51.100.0/24"

[[neighbor]]
address = "192.0.2.1"
peer-asn = 65001

[[neighbor]]
address = "2001:db8::2"
peer-asn = 65000
hold-time = 30

[[neighbor]]
address = "2001:db8::3"
peer-asn = 65000
hold-time = 0
`
	c, err := Parse([]byte(src), "d.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Router:    Router{ASN: 65000, RouterID: "192.0.2.254"},
		API:       API{GRPCListen: "unix:///run/xdprouter/gobgp.sock", MetricsListen: "127.0.0.1:9179"},
		Dataplane: Dataplane{XDPMode: "auto", PinPath: "/sys/fs/bpf/xdprouter", Lookup: "compiled", KeepOnExit: true, URPF: "off"},
		FIB:       FIB{Table: 254, Metric: 20, Protocol: 200, NexthopObjects: true, KeepRoutesOnExit: true, PolicyTableBase: 20000},
		Runtime:   Runtime{GCPercent: 100},
		BGP: BGP{ListenPort: 179, GracefulRestart: true, RestartTime: 120,
			BogonMaxLengthV4: 24, BogonMaxLengthV6: 48, BlackholeCommunities: []string{"65535:666"}, RPKIRejectInvalid: true},
		Networks: []Network{{Prefix: "198.51.100.0/24"}},
		Neighbors: []Neighbor{
			{Address: "192.0.2.1", PeerASN: 65001, Import: "reject-all", Export: "reject-all", Port: 179,
				Families: []string{"ipv4-unicast"}, HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 120, IdleHoldAfterReset: 5, MaxPrefixesWarning: 90, GracefulRestart: true, RestartTime: 120, BFDMinRx: 300, BFDMinTx: 300, BFDMultiplier: 3, FlowspecValidate: true},
			{Address: "2001:db8::2", PeerASN: 65000, Import: "accept-all", Export: "accept-all", Port: 179,
				Families: []string{"ipv6-unicast"}, HoldTime: 30, KeepaliveInterval: 10, ConnectRetry: 120, IdleHoldAfterReset: 5, MaxPrefixesWarning: 90, GracefulRestart: true, RestartTime: 120, BFDMinRx: 300, BFDMinTx: 300, BFDMultiplier: 3, FlowspecValidate: true},
			{Address: "2001:db8::3", PeerASN: 65000, Import: "accept-all", Export: "accept-all", Port: 179,
				Families: []string{"ipv6-unicast"}, HoldTime: 0, KeepaliveInterval: 0, ConnectRetry: 120, IdleHoldAfterReset: 5, MaxPrefixesWarning: 90, GracefulRestart: true, RestartTime: 120, BFDMinRx: 300, BFDMinTx: 300, BFDMultiplier: 3, FlowspecValidate: true},
		},
	}
	if !c.Equal(&want) {
		t.Errorf("got\n%+v\nwant\n%+v", *c, want)
	}
	if got := c.NetworkPrefixes(); !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}) {
		t.Errorf("NetworkPrefixes() = %v", got)
	}
}

// TestGracefulRestartInherited: a neighbor takes the [bgp] graceful-restart
// settings unless it sets its own.
func TestGracefulRestartInherited(t *testing.T) {
	src := `[router]
asn = 65000
router-id = "192.0.2.254"

[bgp]
graceful-restart = false
restart-time = 300
long-lived-stale-time = 0

[[neighbor]]
address = "192.0.2.1"
peer-asn = 65001

[[neighbor]]
address = "192.0.2.2"
peer-asn = 65001
graceful-restart = true
restart-time = 60
long-lived-stale-time = 86400
`
	c, err := Parse([]byte(src), "gr.toml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Neighbors[0], c.Neighbors[1]
	if a.GracefulRestart || a.RestartTime != 300 || a.LongLivedStaleTime != 0 {
		t.Errorf("inherited: graceful-restart %v restart-time %d long-lived %d, want false 300 0", a.GracefulRestart, a.RestartTime, a.LongLivedStaleTime)
	}
	if !b.GracefulRestart || b.RestartTime != 60 || b.LongLivedStaleTime != 86400 {
		t.Errorf("own: graceful-restart %v restart-time %d long-lived %d, want true 60 86400", b.GracefulRestart, b.RestartTime, b.LongLivedStaleTime)
	}
}

func TestExplicitZeroKept(t *testing.T) {
	src := `[api]
grpc-listen = ""
[dataplane]
pin-path = ""
[fib]
metric = 0
`
	c, err := Parse([]byte(src), "z.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.API.GRPCListen != "" || c.Dataplane.PinPath != "" || c.FIB.Metric != 0 {
		t.Errorf("explicit zeros overwritten: %+v %+v %+v", c.API, c.Dataplane, c.FIB)
	}
	if c.BGPEnabled() {
		t.Error("BGPEnabled() with asn 0")
	}
}

func TestEmptyFileDisablesBGP(t *testing.T) {
	c, err := Parse(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.BGPEnabled() || c.API.MetricsListen != DefaultMetricsListen {
		t.Errorf("%+v", c)
	}
}

func TestExample(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Neighbors) != 4 || len(c.PeerGroups) != 1 || len(c.DynamicNeighbors) != 1 || len(c.Policies) != 2 || len(c.Policies[0].Statements) != 4 {
		t.Fatalf("unexpected shape: %d neighbors, %d policies", len(c.Neighbors), len(c.Policies))
	}
	// Every key of the schema appears in the example.
	present := map[string]bool{}
	for p := range c.pos.present {
		present[stripIndexes(p)] = true
	}
	for _, k := range schemaKeys(reflect.TypeOf(Config{}), "") {
		if !present[k] {
			t.Errorf("example.toml lacks %s", k)
		}
	}
}

func schemaKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		key := joinPath(prefix, tag)
		out = append(out, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, schemaKeys(ft, key)...)
		}
	}
	return out
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want ErrNotExist", err)
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.toml")
	if err := os.WriteFile(path, []byte("[router]\nasn = 65000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":1: router.router-id: must be set") {
		t.Errorf("err = %v", err)
	}
}

// header is prepended to every validation case; 3 lines.
const header = `[router]
asn = 65000
router-id = "192.0.2.254"
`

// Each case's body marks the line the error must point at with "#<" (no
// mark: line 0, the key is not in the file).
var validationCases = []struct {
	name, body, key, msg string
	noHeader             bool
}{
	{name: "asn required", noHeader: true, body: `[[network]]
prefix = "10.0.0.0/8"
`, key: "router.asn", msg: "must be set"},
	{name: "asn required, points at [router]", noHeader: true, body: `[router] #<
router-id = "192.0.2.254"
[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
`, key: "router.asn", msg: "must be set"},
	{name: "asn reserved", noHeader: true, body: `[router]
asn = 4294967295 #<
router-id = "192.0.2.254"
`, key: "router.asn", msg: "reserved"},
	{name: "router-id required", noHeader: true, body: `[router] #<
asn = 65000
`, key: "router.router-id", msg: "must be set"},
	{name: "router-id v6", noHeader: true, body: `[router]
asn = 65000
router-id = "2001:db8::1" #<
`, key: "router.router-id", msg: "IPv4"},
	{name: "grpc-listen", body: `[api]
grpc-listen = "localhost" #<
`, key: "api.grpc-listen", msg: "HOST:PORT"},
	{name: "metrics-listen empty", body: `[api]
metrics-listen = "" #<
`, key: "api.metrics-listen", msg: "HOST:PORT"},
	{name: "metrics-listen port", body: `[api]
metrics-listen = "127.0.0.1:70000" #<
`, key: "api.metrics-listen", msg: "1..65535"},
	{name: "xdp-mode", body: `[dataplane]
xdp-mode = "offload" #<
`, key: "dataplane.xdp-mode", msg: `"offload" is not one of native, generic, auto`},
	{name: "interface empty", body: `[dataplane]
interfaces = [
  "eth0",
  "", #<
]
`, key: "dataplane.interfaces[1]", msg: "must not be empty"},
	{name: "interface duplicate", body: `[dataplane]
interfaces = ["eth0", "eth0"] #<
`, key: "dataplane.interfaces[1]", msg: "listed twice"},
	{name: "interface too long", body: `[dataplane]
interfaces = ["abcdefghijklmnop"] #<
`, key: "dataplane.interfaces[0]", msg: "longer than 15"},
	{name: "interface slash", body: `[dataplane]
interfaces = ["eth/0"] #<
`, key: "dataplane.interfaces[0]", msg: "'/'"},
	{name: "interface space", body: `[dataplane]
interfaces = ["eth 0"] #<
`, key: "dataplane.interfaces[0]", msg: "whitespace"},
	{name: "pin-path relative", body: `[dataplane]
pin-path = "bpf/xdprouter" #<
`, key: "dataplane.pin-path", msg: "absolute"},
	{name: "hash-seed negative", body: `[dataplane]
hash-seed = -1 #<
`, key: "dataplane.hash-seed", msg: "1..4294967295"},
	{name: "hash-seed too big", body: `[dataplane]
hash-seed = 4294967296 #<
`, key: "dataplane.hash-seed", msg: "1..4294967295"},
	{name: "fib table 0", body: `[fib]
table = 0 #<
`, key: "fib.table", msg: "1..4294967295"},
	{name: "fib table 255", body: `[fib]
table = 255 #<
`, key: "fib.table", msg: "local table"},
	{name: "fib table too big", body: `[fib]
table = 4294967296 #<
`, key: "fib.table", msg: "1..4294967295"},
	{name: "fib metric", body: `[fib]
metric = -1 #<
`, key: "fib.metric", msg: "must be 0..4294967295"},
	{name: "listen-port", body: `[bgp]
listen-port = 0 #<
`, key: "bgp.listen-port", msg: "-1 not to listen"},
	{name: "listen-addresses", body: `[bgp]
listen-addresses = ["::1", "nope"] #<
`, key: "bgp.listen-addresses[1]", msg: "not an IP"},
	{name: "network not canonical", body: `[[network]]
prefix = "10.0.0.0/8"
[[network]]
prefix = "10.0.0.1/8" #<
`, key: "network[1].prefix", msg: `"10.0.0.1/8" has host bits set; the prefix is 10.0.0.0/8`},
	{name: "network garbage", body: `[[network]]
prefix = "10.0.0.0" #<
`, key: "network[0].prefix", msg: "not a prefix"},
	{name: "network duplicate", body: `[[network]]
prefix = "10.0.0.0/8"
[[network]]
prefix = "10.0.0.0/8" #<
`, key: "network[1].prefix", msg: "already network[0]"},
	{name: "neighbor address", body: `[[neighbor]]
address = "192.0.2.300" #<
peer-asn = 1
`, key: "neighbor[0].address", msg: "not an IP"},
	{name: "neighbor address missing", body: `[[neighbor]] #<
peer-asn = 1
`, key: "neighbor[0].address", msg: "must be set"},
	{name: "neighbor duplicate", body: `[[neighbor]]
address = "2001:db8::1"
peer-asn = 1
[[neighbor]]
address = "2001:DB8:0::1" #<
peer-asn = 2
`, key: "neighbor[1].address", msg: "already neighbor[0]"},
	{name: "peer-asn missing", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
[[neighbor]] #<
address = "192.0.2.2"
`, key: "neighbor[1].peer-asn", msg: "must be set"},
	{name: "peer-asn zero", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 0 #<
`, key: "neighbor[0].peer-asn", msg: "must be 1..4294967294"},
	{name: "families", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
families = ["ipv4-unicast", "l2vpn-evpn"] #<
`, key: "neighbor[0].families[1]", msg: "not one of ipv4-unicast, ipv6-unicast"},
	{name: "families empty", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
families = [] #<
`, key: "neighbor[0].families", msg: "at least one"},
	{name: "import undefined", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
import = "nope" #<
`, key: "neighbor[0].import", msg: `"nope" is not a defined [[policy]]`},
	{name: "export empty", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
export = "" #<
`, key: "neighbor[0].export", msg: "not a defined"},
	{name: "local-address family", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
local-address = "2001:db8::1" #<
`, key: "neighbor[0].local-address", msg: "same address family"},
	{name: "local-address garbage", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
local-address = "me" #<
`, key: "neighbor[0].local-address", msg: "not an IP"},
	{name: "multihop", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
multihop = 256 #<
`, key: "neighbor[0].multihop", msg: "0..255"},
	{name: "hold-time", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
hold-time = 2 #<
`, key: "neighbor[0].hold-time", msg: "0 (no keepalives) or 3..65535"},
	{name: "keepalive >= hold", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
hold-time = 9
keepalive-interval = 9 #<
`, key: "neighbor[0].keepalive-interval", msg: "less than hold-time"},
	{name: "keepalive with hold 0", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
hold-time = 0
keepalive-interval = 3 #<
`, key: "neighbor[0].keepalive-interval", msg: "must be 0 when hold-time is 0"},
	{name: "port 0", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
port = 0 #<
`, key: "neighbor[0].port", msg: "1..65535"},
	{name: "port too big", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
port = 65536 #<
`, key: "neighbor[0].port", msg: "1..65535"},
	{name: "connect-retry 0", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
connect-retry = 0 #<
`, key: "neighbor[0].connect-retry", msg: "at least 1"},
	{name: "max-prefixes-warning 0", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
max-prefixes-warning = 0 #<
`, key: "neighbor[0].max-prefixes-warning", msg: "1..100"},
	{name: "max-prefixes-warning over 100", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
max-prefixes-warning = 101 #<
`, key: "neighbor[0].max-prefixes-warning", msg: "1..100"},
	{name: "max-prefixes-restart too long", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
max-prefixes-restart = 9999999 #<
`, key: "neighbor[0].max-prefixes-restart", msg: "up to 604800 seconds"},
	{name: "restart-time zero", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
restart-time = 0 #<
`, key: "neighbor[0].restart-time", msg: "1..4095"},
	{name: "bgp restart-time too long", body: `[bgp]
restart-time = 4096 #<
`, key: "bgp.restart-time", msg: "1..4095"},
	{name: "long-lived-stale-time too long", body: `[bgp]
long-lived-stale-time = 16777216 #<
`, key: "bgp.long-lived-stale-time", msg: "up to 16777215"},
	{name: "long-lived without graceful restart", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
graceful-restart = false
long-lived-stale-time = 3600 #<
`, key: "neighbor[0].long-lived-stale-time", msg: "needs graceful-restart = true"},
	{name: "bogon-max-length-v4 too long", body: `[bgp]
bogon-filter = true
bogon-max-length-v4 = 33 #<
`, key: "bgp.bogon-max-length-v4", msg: "8..32"},
	{name: "bogon-max-length-v6 zero", body: `[bgp]
bogon-max-length-v6 = 0 #<
`, key: "bgp.bogon-max-length-v6", msg: "16..128"},
	{name: "blackhole community malformed", body: `[bgp]
blackhole-communities = [
  "65535:666",
  "65535:70000", #<
]
`, key: "bgp.blackhole-communities[1]", msg: "both parts 0..65535"},
	{name: "blackhole community twice", body: `[bgp]
blackhole-communities = [
  "65000:666",
  "65000:666", #<
]
`, key: "bgp.blackhole-communities[1]", msg: "listed twice"},
	{name: "accept-blackhole without communities", body: `[bgp]
blackhole-communities = []
[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
accept-blackhole = true #<
`, key: "neighbor[0].accept-blackhole", msg: "needs at least one community"},
	{name: "bfd-min-rx too small", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
bfd = true
bfd-min-rx = 5 #<
`, key: "neighbor[0].bfd-min-rx", msg: "10..60000 milliseconds"},
	{name: "bfd-min-tx too large", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
bfd-min-tx = 60001 #<
`, key: "neighbor[0].bfd-min-tx", msg: "10..60000 milliseconds"},
	{name: "bfd-multiplier zero", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
bfd-multiplier = 0 #<
`, key: "neighbor[0].bfd-multiplier", msg: "1..255"},
	{name: "idle-hold-after-reset too large", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
idle-hold-after-reset = 3601 #<
`, key: "neighbor[0].idle-hold-after-reset", msg: "1..3600 seconds"},
	{name: "bfd with multihop", body: `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
multihop = 2
bfd = true #<
`, key: "neighbor[0].bfd", msg: "single-hop"},
	{name: "prefix-set range below length", body: `[[prefix-set]]
name = "a"
prefixes = [
  "10.0.0.0/8 16..24",
  "10.0.0.0/16 8..24", #<
]
`, key: "prefix-set[0].prefixes[1]", msg: "16 <= MIN <= MAX <= 32"},
	{name: "prefix-set range above family", body: `[[prefix-set]]
name = "a"
prefixes = ["2001:db8::/32 48..129"] #<
`, key: "prefix-set[0].prefixes[0]", msg: "32 <= MIN <= MAX <= 128"},
	{name: "prefix-set range syntax", body: `[[prefix-set]]
name = "a"
prefixes = ["10.0.0.0/8 16-24"] #<
`, key: "prefix-set[0].prefixes[0]", msg: "not MIN..MAX"},
	{name: "prefix-set host bits", body: `[[prefix-set]]
name = "a"
prefixes = ["10.1.0.0/8"] #<
`, key: "prefix-set[0].prefixes[0]", msg: "host bits"},
	{name: "prefix-set name duplicate", body: `[[prefix-set]]
name = "a"
[[prefix-set]]
name = "a" #<
`, key: "prefix-set[1].name", msg: `"a" is already the name of prefix-set[0]`},
	{name: "prefix-set name missing", body: `[[prefix-set]] #<
prefixes = []
`, key: "prefix-set[0].name", msg: "must be set"},
	{name: "neighbor-set entry", body: `[[neighbor-set]]
name = "a"
addresses = ["192.0.2.1", "192.0.2.0/24", "bob"] #<
`, key: "neighbor-set[0].addresses[2]", msg: "neither an IP address nor a prefix"},
	{name: "community-set bad value", body: `[[community-set]]
name = "a"
communities = ["65000:70000"] #<
`, key: "community-set[0].communities[0]", msg: "0..65535"},
	{name: "community-set bad regexp", body: `[[community-set]]
name = "a"
communities = ["65000:(1"] #<
`, key: "community-set[0].communities[0]", msg: "not a valid regular expression"},
	{name: "community-set name duplicate", body: `[[community-set]]
name = "a"
[[neighbor-set]]
name = "a"
[[community-set]]
name = "a" #<
`, key: "community-set[1].name", msg: "already the name of community-set[0]"},
	{name: "policy builtin name", body: `[[policy]]
name = "accept-all" #<
`, key: "policy[0].name", msg: "built-in"},
	{name: "policy duplicate", body: `[[policy]]
name = "p"
[[policy]]
name = "p" #<
`, key: "policy[1].name", msg: "already the name of policy[0]"},
	{name: "statement action missing", body: `[[policy]]
name = "p"
[[policy.statement]]
action = "accept"
[[policy]]
name = "q"
[[policy.statement]]
action = "accept"
[[policy.statement]] #<
match-prefix-set = "x"
[[prefix-set]]
name = "x"
`, key: "policy[1].statement[1].action", msg: "must be set"},
	{name: "statement action bad", body: `[[policy]]
name = "p"
  [[policy.statement]]
  action = "drop" #<
`, key: "policy[0].statement[0].action", msg: `"drop" is not one of accept, reject, next`},
	{name: "statement unknown prefix-set", body: `[[policy]]
name = "p"
  [[policy.statement]]
  match-prefix-set = "nope" #<
  action = "accept"
`, key: "policy[0].statement[0].match-prefix-set", msg: `no [[prefix-set]] is named "nope"`},
	{name: "statement neighbor-set of wrong kind", body: `[[prefix-set]]
name = "x"
[[policy]]
name = "p"
  [[policy.statement]]
  match-neighbor-set = "x" #<
  action = "accept"
`, key: "policy[0].statement[0].match-neighbor-set", msg: `no [[neighbor-set]] is named "x"`},
	{name: "statement unknown community-set", body: `[[policy]]
name = "p"
  [[policy.statement]]
  match-community-set = "nope" #<
  action = "accept"
`, key: "policy[0].statement[0].match-community-set", msg: "no [[community-set]]"},
	{name: "match-set-options", body: `[[policy]]
name = "p"
  [[policy.statement]]
  match-set-options = "all" #<
  action = "accept"
`, key: "policy[0].statement[0].match-set-options", msg: "not one of any, invert"},
	{name: "add-community", body: `[[policy]]
name = "p"
  [[policy.statement]]
  action = "accept"
  add-community = ["65000:1", "65000"] #<
`, key: "policy[0].statement[0].add-community[1]", msg: "ASN:VALUE"},
	{name: "set-med negative", body: `[[policy]]
name = "p"
  [[policy.statement]]
  action = "accept"
  set-med = -1 #<
`, key: "policy[0].statement[0].set-med", msg: "0..4294967295"},
	{name: "statement names unique", body: `[[policy]]
name = "p"
  [[policy.statement]]
  name = "s"
  action = "accept"
  [[policy.statement]]
  name = "s" #<
  action = "accept"
`, key: "policy[0].statement[1].name", msg: "already the name of statement[0]"},
	{name: "unnumbered with address", body: `[[neighbor]]
interface = "eth1"
address = "192.0.2.1" #<
peer-asn = 65001
`, key: "neighbor[0].address", msg: "not with interface"},
	{name: "unnumbered bad interface", body: `[[neighbor]]
interface = "eth/1" #<
peer-asn = 65001
`, key: "neighbor[0].interface", msg: "contains '/'"},
	{name: "unnumbered twice on a link", body: `[[neighbor]]
interface = "eth1"
peer-asn = 65001
[[neighbor]]
interface = "eth1" #<
peer-asn = 65002
`, key: "neighbor[1].interface", msg: "already neighbor[0]"},
	{name: "unnumbered multihop", body: `[[neighbor]]
interface = "eth1"
peer-asn = 65001
multihop = 2 #<
`, key: "neighbor[0].multihop", msg: "directly connected"},
	{name: "unnumbered local-address", body: `[[neighbor]]
interface = "eth1"
peer-asn = 65001
local-address = "192.0.2.2" #<
`, key: "neighbor[0].local-address", msg: "link-local"},
	{name: "neither address nor interface", body: `[[neighbor]] #<
peer-asn = 65001
`, key: "neighbor[0].address", msg: "or interface"},
	{name: "dotted keys and inline tables", noHeader: true, body: `router = { asn = 65000, router-id = "1.2.3" } #<
`, key: "router.router-id", msg: "IPv4"},
	{name: "dotted key", noHeader: true, body: `router.asn = 65000
router.router-id = "x" #<
`, key: "router.router-id", msg: "IPv4"},
}

func TestValidation(t *testing.T) {
	for _, tc := range validationCases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.body
			if !tc.noHeader {
				src = header + src
			}
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
			for _, e := range allErrors(t, err) {
				if e.Key == tc.key && strings.Contains(e.Msg, tc.msg) {
					if e.Line != wantLine || e.File != "t.toml" {
						t.Errorf("error %q at %s:%d, want t.toml:%d", e, e.File, e.Line, wantLine)
					}
					prefix := "t.toml: " + tc.key + ": "
					if wantLine > 0 {
						prefix = fmt.Sprintf("t.toml:%d: %s: ", wantLine, tc.key)
					}
					if !strings.HasPrefix(e.Error(), prefix) {
						t.Errorf("message %q lacks prefix %q", e, prefix)
					}
					return
				}
			}
			t.Errorf("no error for %s containing %q; got:\n%v", tc.key, tc.msg, err)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "/etc/xdprouter/xdprouter.toml", Line: 12, Key: "neighbor[1].peer-asn", Msg: "must be set"},
			"/etc/xdprouter/xdprouter.toml:12: neighbor[1].peer-asn: must be set"},
		{Error{File: "f", Key: "router.asn", Msg: "missing; must be set"}, "f: router.asn: missing; must be set"},
		{Error{File: "f", Line: 3, Col: 7, Msg: "syntax error: x"}, "f:3:7: syntax error: x"},
		{Error{Key: "fib.table", Msg: "m"}, "fib.table: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	src := header + `[api]
grpc_listen = "x"
[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
hold = 3
[[neighbor]]
address = "192.0.2.2"
peer-asn = 1
hold = 3
[bogus]
a = 1
b = 2
[[policy]]
name = "p"
  [[policy.statement]]
  action = "accept"
  set-community = ["1:1"]
`
	_, err := Parse([]byte(src), "u.toml")
	if err == nil {
		t.Fatal("no error")
	}
	var got []string
	for _, e := range allErrors(t, err) {
		got = append(got, e.Error())
	}
	want := []string{
		"u.toml:5: api.grpc_listen: unknown key",
		"u.toml:9: neighbor[0].hold: unknown key",
		"u.toml:13: neighbor[1].hold: unknown key",
		"u.toml:14: bogus: unknown key",
		"u.toml:21: policy[0].statement[0].set-community: unknown key",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSyntaxError(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{header + "[fib]\ntable = = 3\n", "s.toml:5:9: syntax error: "},
		{header + "[router]\n", "s.toml:4:"},                 // duplicate table
		{"[dataplane]\ninterfaces = [\"a\",\n", "s.toml:2:"}, // unterminated array
	} {
		_, err := Parse([]byte(tc.src), "s.toml")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want prefix %q", tc.src, err, tc.want)
		}
	}
}

func TestTypeError(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{header + "[fib]\ntable = \"main\"\n", "t.toml:5: fib.table: "},
		// The library reports the last neighbor's line; we find the right one.
		{header + `[[neighbor]]
address = "192.0.2.1"
peer-asn = -1
[[neighbor]]
address = "192.0.2.2"
peer-asn = 1
`, "t.toml:6: neighbor[0].peer-asn: "},
		{header + `[[neighbor]]
address = "192.0.2.1"
peer-asn = 1
[[neighbor]]
address = "192.0.2.2"
peer-asn = "x"
[[neighbor]]
address = "192.0.2.3"
peer-asn = 3
`, "t.toml:9: neighbor[1].peer-asn: "},
		{header + "[dataplane]\ninterfaces = \"eth0\"\n", "t.toml:5: dataplane.interfaces: "},
	} {
		_, err := Parse([]byte(tc.src), "t.toml")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("err = %v, want prefix %q", err, tc.want)
		}
	}
}

func TestAllErrorsReported(t *testing.T) {
	src := `[router]
asn = 65000
router-id = "nope"
[dataplane]
xdp-mode = "fast"
interfaces = ["eth0", "eth0"]
[fib]
table = 255
[[neighbor]]
address = "192.0.2.1"
unknown = 1
[[network]]
prefix = "10.0.0.1/8"
`
	_, err := Parse([]byte(src), "m.toml")
	errs := allErrors(t, err)
	want := map[string]int{
		"router.router-id":        3,
		"dataplane.xdp-mode":      5,
		"dataplane.interfaces[1]": 6,
		"fib.table":               8,
		"neighbor[0].peer-asn":    9,
		"neighbor[0].unknown":     11,
		"network[0].prefix":       13,
	}
	got := map[string]int{}
	for _, e := range errs {
		got[e.Key] = e.Line
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v\n%v", got, want, err)
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := &Config{Neighbors: []Neighbor{{Address: "192.0.2.1", PeerASN: 1}}}
	c.ApplyDefaults()
	err := c.Validate()
	if err == nil || err.Error() != "router.asn: must be set (1..4294967294) when [[neighbor]], [[dynamic-neighbor]] or [[network]] is configured; asn = 0 disables BGP" {
		t.Errorf("err = %v", err)
	}
	c.Router = Router{ASN: 65000, RouterID: "192.0.2.254"}
	if err := c.Validate(); err != nil {
		t.Errorf("err = %v", err)
	}
}

func TestEqual(t *testing.T) {
	a, err := Parse([]byte(minimal), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte("# moved\n\n"+minimal), "b.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Error("layout-only change is not Equal")
	}
	b.Neighbors[0].PeerASN = 65002
	if a.Equal(b) {
		t.Error("changed neighbor is Equal")
	}
}

func TestScanLines(t *testing.T) {
	src := `# comment
[a]            # 2
x = 1          # 3
"quoted key" = """
multi
x = 9
"""            # ends 7
[[b]]          # 8
y = [          # 9
  1,           # 10
  # comment
  [2, 3],      # 12
]
[b.c]          # 14
z = 'lit'      # 15
[[b]]          # 16
[[b.d]]        # 17
w = {p = 1,    q = "x#"} # 18
`
	got := scanLines([]byte(src))
	want := map[string]int{
		"a": 2, "a.x": 3, "a.quoted key": 4, "b": 8, "b[0]": 8, "b[0].y": 9,
		"b[0].y[0]": 10, "b[0].y[1]": 12, "b[0].y[1][0]": 12, "b[0].y[1][1]": 12,
		"b[0].c": 14, "b[0].c.z": 15, "b[1]": 16, "b[1].d": 17, "b[1].d[0]": 17,
		"b[1].d[0].w": 18, "b[1].d[0].w.p": 18, "b[1].d[0].w.q": 18,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

// Load reads regular files only, and at most MaxFileSize bytes.
func TestLoadRefusesHugeAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	// Valid TOML (a comment) just over the limit.
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	atLimit := filepath.Join(dir, "limit.toml")
	if err := os.WriteFile(atLimit, []byte("#"+strings.Repeat("x", MaxFileSize-2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(atLimit); err != nil {
		t.Errorf("Load of a file of exactly %d bytes: %v", MaxFileSize, err)
	}
	for _, tc := range []struct{ path, want string }{
		{big, big + ": 1048578 bytes, larger than the limit of 1048576 bytes"},
		{fifo, fifo + ": not a regular file (a FIFO)"},
		{"/dev/zero", "/dev/zero: not a regular file (a character device)"},
		{dir, dir + ": not a regular file (a directory)"},
	} {
		done := make(chan error, 1)
		go func() { _, err := Load(tc.path); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%s) = %v, want an error containing %q", tc.path, err, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Load(%s) still reading after 10 s", tc.path)
		}
	}
}

func TestFIBProtocol(t *testing.T) {
	c, err := Parse([]byte("[fib]\nresolve-via-default = true\n"), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.FIB.Protocol != 200 || !c.FIB.ResolveViaDefault {
		t.Errorf("FIB = %+v, want protocol 200 and resolve-via-default", c.FIB)
	}
	if c, err := Parse(nil, "e.toml"); err != nil || c.FIB.ResolveViaDefault {
		t.Errorf("default resolve-via-default: %+v, %v; want false", c, err)
	}
	for _, tc := range []struct {
		value int
		msg   string // "" valid
	}{
		{5, ""}, {255, ""}, {200, ""},
		{0, "reserved by the kernel"}, {2, "reserved by the kernel"}, {4, "reserved by the kernel"},
		{186, `"bgp", used by FRR and BIRD`}, {256, "must be 5..255"}, {-1, "must be 5..255"},
	} {
		_, err := Parse([]byte(fmt.Sprintf("[fib]\nprotocol = %d\n", tc.value)), "p.toml")
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("protocol = %d: %v", tc.value, err)
		case tc.msg != "" && (err == nil || !strings.HasPrefix(err.Error(), "p.toml:2: fib.protocol: ") || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("protocol = %d: err = %v, want p.toml:2: fib.protocol: ...%s", tc.value, err, tc.msg)
		}
	}
}

func TestGRPCListen(t *testing.T) {
	c, err := Parse(nil, "e.toml")
	if err != nil {
		t.Fatal(err)
	}
	if path, ok := c.API.GRPCSocket(); !ok || path != "/run/xdprouter/gobgp.sock" || c.API.PProf {
		t.Errorf("default api = %+v: want the root-only unix socket and no pprof", c.API)
	}
	for _, tc := range []struct{ value, msg string }{
		{"unix:///tmp/x/gobgp.sock", ""}, {"127.0.0.1:50051", ""}, {"", ""},
		{"unix://relative.sock", "must be absolute"}, {"unix:///run/x/", "must be absolute and clean"},
		{"localhost", "HOST:PORT"},
	} {
		_, err := Parse([]byte(fmt.Sprintf("[api]\ngrpc-listen = %q\n", tc.value)), "a.toml")
		switch {
		case tc.msg == "" && err != nil:
			t.Errorf("grpc-listen = %q: %v", tc.value, err)
		case tc.msg != "" && (err == nil || !strings.HasPrefix(err.Error(), "a.toml:2: api.grpc-listen: ") || !strings.Contains(err.Error(), tc.msg)):
			t.Errorf("grpc-listen = %q: err = %v, want a.toml:2: api.grpc-listen: ...%s", tc.value, err, tc.msg)
		}
	}
}

// Keys are case-sensitive: the TOML library matches fields ignoring case,
// which accepted "nAme" as name and, with both in one table, kept either
// value depending on map order (found by FuzzParse).
func TestKeysAreCaseSensitive(t *testing.T) {
	src := header + `[[policy]]
nAme = "0"
name = "7"
[[neighbor]]
address = "192.0.2.1"
Peer-ASN = 65001
`
	for range 20 {
		_, err := Parse([]byte(src), "x.toml")
		errs := allErrors(t, err)
		var keys []string
		for _, e := range errs {
			if e.Msg == "unknown key" {
				keys = append(keys, fmt.Sprintf("%s@%d", e.Key, e.Line))
			}
		}
		if strings.Join(keys, " ") != "policy[0].nAme@5 neighbor[0].Peer-ASN@9" {
			t.Fatalf("unknown keys %v; all errors: %v", keys, err)
		}
	}
}
