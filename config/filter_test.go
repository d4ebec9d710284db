package config

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/filter"
)

// filterHeader precedes every [[filter]] test body: 5 lines.
const filterHeader = header + `[dataplane]
interfaces = ["eth1", "eth2"]
`

var fakeIfindex = map[string]int{"eth1": 11, "eth2": 12}

func fakeResolve(name string) (int, error) {
	if i, ok := fakeIfindex[name]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("no such interface")
}

func rg(lo, hi uint16) filter.Range { return filter.Range{Lo: lo, Hi: hi} }
func one(x uint16) []filter.Range   { return []filter.Range{rg(x, x)} }

// rulesOf parses filterHeader+body and builds its rules.
func rulesOf(t *testing.T, body string) []filter.Rule {
	t.Helper()
	c, err := Parse([]byte(filterHeader+body), "f.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	rules, err := c.FilterRules(fakeResolve)
	if err != nil {
		t.Fatalf("FilterRules: %v", err)
	}
	return rules
}

func TestFilterParse(t *testing.T) {
	drop := filter.Action{Kind: filter.Drop}
	rule := func(r filter.Rule) filter.Rule {
		if r.Name == "" {
			r.Name = "filter-1"
		}
		r.Origin = filter.FromConfig
		if r.Action.Kind == 0 {
			r.Action = drop
		}
		return r
	}
	for _, tc := range []struct {
		name, body string
		want       filter.Rule
	}{
		{"action only", `action = "drop"`, rule(filter.Rule{})},
		{"name", `name = "x"
action = "drop"`, rule(filter.Rule{Name: "x"})},
		{"prefixes", `src = "198.51.100.0/24"
dst = "192.0.2.1"
action = "drop"`, rule(filter.Rule{Family: 4, Src: netip.MustParsePrefix("198.51.100.0/24"), Dst: netip.MustParsePrefix("192.0.2.1/32")})},
		{"ipv6 address", `dst = "2001:db8::1"
action = "drop"`, rule(filter.Rule{Family: 6, Dst: netip.MustParsePrefix("2001:db8::1/128")})},
		{"ipv6 src only", `src = "2001:db8::/32"
action = "drop"`, rule(filter.Rule{Family: 6, Src: netip.MustParsePrefix("2001:db8::/32")})},
		{"protocol name", `protocol = "tcp"
action = "drop"`, rule(filter.Rule{Protocols: one(6)})},
		{"protocol names, case, numbers, ranges", `protocol = ["UDP", 1, "ipv6-icmp", "gre,esp,ah", "sctp", "100-110", "icmpv6"]
action = "drop"`, rule(filter.Rule{Protocols: []filter.Range{rg(1, 1), rg(17, 17), rg(47, 47), rg(50, 51), rg(58, 58), rg(100, 110), rg(132, 132)}})},
		{"protocol range of names", `protocol = "tcp-udp"
action = "drop"`, rule(filter.Rule{Protocols: []filter.Range{rg(6, 17)}})},
		{"port integer", `dport = 80
action = "drop"`, rule(filter.Rule{DstPorts: one(80)})},
		{"port string", `sport = "80"
action = "drop"`, rule(filter.Rule{SrcPorts: one(80)})},
		{"port list string, merged", `port = "443, 80,8000-8080,8080-8090,81"
protocol = ["tcp", "udp", "sctp"]
action = "drop"`, rule(filter.Rule{Protocols: []filter.Range{rg(6, 6), rg(17, 17), rg(132, 132)}, Ports: []filter.Range{rg(80, 81), rg(443, 443), rg(8000, 8090)}})},
		{"port array of both", `dport = [443, "80", "0-10", 65535]
action = "drop"`, rule(filter.Rule{DstPorts: []filter.Range{rg(0, 10), rg(80, 80), rg(443, 443), rg(65535, 65535)}})},
		{"full range stays", `dport = "0-65535"
action = "drop"`, rule(filter.Rule{DstPorts: []filter.Range{rg(0, 65535)}})},
		{"icmp", `protocol = "icmp"
dst = "192.0.2.0/24"
icmp-type = [0, 8]
icmp-code = 0
action = "drop"`, rule(filter.Rule{Family: 4, Dst: netip.MustParsePrefix("192.0.2.0/24"), Protocols: one(1), ICMPTypes: []filter.Range{rg(0, 0), rg(8, 8)}, ICMPCodes: one(0)})},
		{"icmpv6", `protocol = "icmpv6"
src = "2001:db8::/32"
icmp-type = "128-129"
action = "drop"`, rule(filter.Rule{Family: 6, Src: netip.MustParsePrefix("2001:db8::/32"), Protocols: one(58), ICMPTypes: []filter.Range{rg(128, 129)}})},
		{"icmp type, both protocols, no family", `protocol = "icmp,icmpv6"
icmp-type = 3
action = "drop"`, rule(filter.Rule{Protocols: []filter.Range{rg(1, 1), rg(58, 58)}, ICMPTypes: one(3)})},
		{"dscp names and numbers", `dscp = ["EF", "af11-af13", 0, "cs7"]
action = "drop"`, rule(filter.Rule{DSCP: []filter.Range{rg(0, 0), rg(10, 14), rg(46, 46), rg(56, 56)}})},
		{"length", `length = "468-65535"
action = "drop"`, rule(filter.Rule{Lengths: []filter.Range{rg(468, 65535)}})},
		{"tcp flags", `tcp-flags = "syn,!ack"
action = "drop"`, rule(filter.Rule{TCPFlags: []filter.TCPFlags{{Set: filter.TCPSyn, Clear: filter.TCPAck}}})},
		{"tcp flags alternatives", `protocol = "tcp"
tcp-flags = ["SYN, !ACK", "fin", "!fin,!syn,!rst,!psh,!ack,!urg,!ece,!cwr", "fin"]
action = "drop"`, rule(filter.Rule{Protocols: one(6), TCPFlags: []filter.TCPFlags{{Set: filter.TCPSyn, Clear: filter.TCPAck}, {Set: filter.TCPFin}, {Clear: 0xff}}})},
		{"fragment no", `fragment = "no"
action = "drop"`, rule(filter.Rule{Fragments: filter.NotFragment})},
		{"fragment yes", `fragment = "yes"
action = "drop"`, rule(filter.Rule{Fragments: filter.AnyFragment})},
		{"fragment array", `fragment = ["no", "later"]
action = "drop"`, rule(filter.Rule{Fragments: filter.NotFragment | filter.LaterFragment})},
		{"fragment first", `fragment = "first"
action = "drop"`, rule(filter.Rule{Fragments: filter.FirstFragment})},
		{"fragment any is no restriction", `fragment = "any"
action = "drop"`, rule(filter.Rule{})},
		{"fragment every state is no restriction", `fragment = "no,yes"
action = "drop"`, rule(filter.Rule{})},
		{"in", `in = ["eth2", "eth1"]
action = "drop"`, rule(filter.Rule{Ingress: []int{12, 11}})},
		{"pass", `action = "pass"`, rule(filter.Rule{Action: filter.Action{Kind: filter.Pass}})},
		{"count", `action = "count"`, rule(filter.Rule{Action: filter.Action{Kind: filter.Count}})},
		{"accept", `action = "accept"`, rule(filter.Rule{Action: filter.Action{Kind: filter.Accept}})},
		{"accept remark continue", `action = "accept"
set-dscp = 46
continue = true`, rule(filter.Rule{Action: filter.Action{Kind: filter.Accept, Remark: true, DSCP: 46, Continue: true}})},
		{"set-dscp 0", `action = "accept"
set-dscp = 0`, rule(filter.Rule{Action: filter.Action{Kind: filter.Accept, Remark: true}})},
		{"pps", `action = "rate-limit"
rate = "10000pps"`, rule(filter.Rule{Action: filter.Action{Kind: filter.RateLimit, PPS: 10000}})},
		{"kpps", `action = "rate-limit"
rate = "1.5kpps"
set-dscp = "CS1"`, rule(filter.Rule{Action: filter.Action{Kind: filter.RateLimit, PPS: 1500, Remark: true, DSCP: 8}})},
		{"mbps", `action = "rate-limit"
rate = "100mbps"
continue = true`, rule(filter.Rule{Action: filter.Action{Kind: filter.RateLimit, BPS: 12_500_000, Continue: true}})},
		{"Mbit", `action = "rate-limit"
rate = "100 Mbit"`, rule(filter.Rule{Action: filter.Action{Kind: filter.RateLimit, BPS: 12_500_000}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules := rulesOf(t, "[[filter]]\n"+tc.body+"\n")
			if len(rules) != 1 {
				t.Fatalf("%d rules", len(rules))
			}
			if !reflect.DeepEqual(rules[0], tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", rules[0], tc.want)
			}
		})
	}
}

func TestFilterOrderAndNames(t *testing.T) {
	rules := rulesOf(t, `[[filter]]
action = "count"
[[filter]]
name = "second"
action = "drop"
[[filter]]
action = "pass"
`)
	var names []string
	for _, r := range rules {
		names = append(names, r.Name+"/"+r.Action.Kind.String())
	}
	if got := strings.Join(names, " "); got != "filter-1/count second/drop filter-3/pass" {
		t.Errorf("rules: %s", got)
	}
	c, err := Parse([]byte(filterHeader+"[[filter]]\naction = \"drop\"\n"), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Filters[0].Name != "filter-1" {
		t.Errorf("default name %q", c.Filters[0].Name)
	}
}

// filterCases: like validationCases (the line marked "#<" is the error's),
// each after filterHeader.
var filterCases = []struct{ name, body, key, msg string }{
	{"src not a prefix", `[[filter]]
src = "x" #<
action = "drop"`, "filter[0].src", `"x" is neither a prefix`},
	{"src host bits", `[[filter]]
src = "198.51.100.1/24" #<
action = "drop"`, "filter[0].src", `"198.51.100.1/24" has host bits set; the prefix is 198.51.100.0/24`},
	{"dst with zone", `[[filter]]
dst = "fe80::1%eth1" #<
action = "drop"`, "filter[0].dst", "neither a prefix"},
	{"src empty", `[[filter]]
src = "" #<
action = "drop"`, "filter[0].src", "must not be empty"},
	{"families differ", `[[filter]]
src = "198.51.100.0/24"
dst = "2001:db8::/32" #<
action = "drop"`, "filter[0].dst", "2001:db8::/32 is IPv6 but src 198.51.100.0/24 is IPv4: both must be of one family"},
	{"second rule", `[[filter]]
action = "drop"
[[filter]]
dport = 70000 #<
action = "drop"`, "filter[1].dport", `"70000" is not a port 0-65535`},
	{"protocol unknown", `[[filter]]
protocol = "tcpp" #<
action = "drop"`, "filter[0].protocol", `"tcpp" is not a protocol (0-255 or a name`},
	{"protocol too big", `[[filter]]
protocol = 256 #<
action = "drop"`, "filter[0].protocol", `"256" is not a protocol`},
	{"protocol negative", `[[filter]]
protocol = -1 #<
action = "drop"`, "filter[0].protocol", `"-1" is not a protocol`},
	{"reversed range", `[[filter]]
sport = "90-80" #<
action = "drop"`, "filter[0].sport", `"90-80": the range is reversed (90 > 80)`},
	{"element of a multi-line array", `[[filter]]
dport = [
  80,
  "http", #<
]
action = "drop"`, "filter[0].dport[1]", `"http" is not a port`},
	{"token in a list", `[[filter]]
port = "80,,443" #<
action = "drop"`, "filter[0].port", `"80,,443": "" is not a port`},
	{"empty array", `[[filter]]
length = [] #<
action = "drop"`, "filter[0].length", "must list at least one value"},
	{"wrong TOML type", `[[filter]]
action = "drop"
[[filter]]
dport = true #<
action = "drop"`, "filter[1].dport", "want an integer, a string"},
	{"float in array", `[[filter]]
dscp = [1, 2.5] #<
action = "drop"`, "filter[0].dscp", "got an array with a float"},
	{"dscp too big", `[[filter]]
dscp = 64 #<
action = "drop"`, "filter[0].dscp", `"64" is not a DSCP (0-63 or a name`},
	{"icmp type too big", `[[filter]]
icmp-type = 256 #<
action = "drop"`, "filter[0].icmp-type", `"256" is not an ICMP type 0-255`},
	{"icmp code too big", `[[filter]]
icmp-code = "1-300" #<
action = "drop"`, "filter[0].icmp-code", `"1-300" is not an ICMP code 0-255`},
	{"length too big", `[[filter]]
length = 65536 #<
action = "drop"`, "filter[0].length", `"65536" is not a packet length`},
	{"ports without ports", `[[filter]]
protocol = "icmp"
sport = 123 #<
action = "drop"`, "filter[0].sport", "protocol icmp has no ports (only tcp, udp and sctp have)"},
	{"ports with a range of protocols", `[[filter]]
protocol = "6-17"
dport = 53 #<
action = "drop"`, "filter[0].dport", "protocol 7 has no ports"},
	{"icmp type with tcp", `[[filter]]
protocol = "tcp"
icmp-type = 8 #<
action = "drop"`, "filter[0].icmp-type", "protocol tcp has no ICMP types and codes (only icmp and icmpv6 have)"},
	{"icmp code with gre", `[[filter]]
protocol = "gre"
icmp-code = 0 #<
action = "drop"`, "filter[0].icmp-code", "protocol gre has no ICMP types and codes"},
	{"icmp with IPv6", `[[filter]]
dst = "2001:db8::/32"
protocol = "icmp" #<
action = "drop"`, "filter[0].protocol", "icmp is IPv4's, and dst 2001:db8::/32 is IPv6: use icmpv6"},
	{"icmpv6 with IPv4", `[[filter]]
src = "192.0.2.0/24"
protocol = 58 #<
icmp-type = 128
action = "drop"`, "filter[0].protocol", "icmpv6 is IPv6's, and src 192.0.2.0/24 is IPv4: use icmp"},
	{"icmp type, both ICMPs, IPv4", `[[filter]]
src = "192.0.2.0/24"
protocol = "icmp,icmpv6"
icmp-type = 8 #<
action = "drop"`, "filter[0].icmp-type", "protocol icmpv6 is not the ICMP of IPv4 (src 192.0.2.0/24)"},
	{"icmp type and ports", `[[filter]]
dport = 80
icmp-type = 8 #<
action = "drop"`, "filter[0].icmp-type", "no packet has both an ICMP header and ports: not with dport"},
	{"icmp code and tcp flags", `[[filter]]
tcp-flags = "syn"
icmp-code = 0 #<
action = "drop"`, "filter[0].icmp-code", "no packet has both an ICMP header and TCP flags"},
	{"tcp flags with udp", `[[filter]]
protocol = "tcp,udp"
tcp-flags = "syn" #<
action = "drop"`, "filter[0].tcp-flags", "protocol udp has no TCP flags (only tcp has)"},
	{"tcp flag unknown", `[[filter]]
tcp-flags = ["syn", "syn,!ak"] #<
action = "drop"`, "filter[0].tcp-flags[1]", `"syn,!ak": "!ak" is not a TCP flag`},
	{"tcp flag set and clear", `[[filter]]
tcp-flags = "syn,!syn" #<
action = "drop"`, "filter[0].tcp-flags", `"syn,!syn": syn is both set and clear`},
	{"tcp flags empty", `[[filter]]
tcp-flags = [] #<
action = "drop"`, "filter[0].tcp-flags", "must list at least one alternative"},
	{"tcp flags not strings", `[[filter]]
tcp-flags = 2 #<
action = "drop"`, "filter[0].tcp-flags", "want a string or an array of strings; got an integer"},
	{"fragment unknown", `[[filter]]
fragment = "maybe" #<
action = "drop"`, "filter[0].fragment", `"maybe" is not one of no, first, later, yes (first or later), any`},
	{"fragment later with ports", `[[filter]]
fragment = "later" #<
dport = 53
action = "drop"`, "filter[0].fragment", `"later" fragments have no transport header, so dport never matches them`},
	{"fragment empty", `[[filter]]
fragment = [] #<
action = "drop"`, "filter[0].fragment", "must list at least one of"},
	{"in not a router port", `[[filter]]
in = ["eth1", "eth3"] #<
action = "drop"`, "filter[0].in[1]", `"eth3" is not in dataplane.interfaces`},
	{"in twice", `[[filter]]
in = ["eth1", "eth1"] #<
action = "drop"`, "filter[0].in[1]", `"eth1" is listed twice (also filter[0].in[0])`},
	{"in empty", `[[filter]]
in = [] #<
action = "drop"`, "filter[0].in", "must list at least one interface"},
	{"action missing", `[[filter]] #<
dport = 80`, "filter[0].action", "must be set (drop, pass, accept, count or rate-limit)"},
	{"action unknown", `[[filter]]
action = "reject" #<`, "filter[0].action", `"reject" is not one of drop, pass, accept, count, rate-limit`},
	{"action case-sensitive", `[[filter]]
action = "Drop" #<`, "filter[0].action", `"Drop" is not one of`},
	{"rate missing", `[[filter]] #<
action = "rate-limit"`, "filter[0].rate", `must be set with action = "rate-limit"`},
	{"rate without rate-limit", `[[filter]]
action = "drop"
rate = "1pps" #<`, "filter[0].rate", `only with action = "rate-limit", not "drop"`},
	{"rate bad unit", `[[filter]]
action = "rate-limit"
rate = "100MBs" #<`, "filter[0].rate", `"100MBs" is not a rate`},
	{"rate without unit", `[[filter]]
action = "rate-limit"
rate = "100" #<`, "filter[0].rate", `"100" is not a rate`},
	{"rate zero", `[[filter]]
action = "rate-limit"
rate = "0pps" #<`, "filter[0].rate", "at least 1 packet per second"},
	{"rate below a byte", `[[filter]]
action = "rate-limit"
rate = "3bps" #<`, "filter[0].rate", "at least 8 bits (1 byte) per second"},
	{"rate huge", `[[filter]]
action = "rate-limit"
rate = "2000000tbps" #<`, "filter[0].rate", "beyond any link"},
	{"rate not a string", `[[filter]]
action = "rate-limit"
rate = 100 #<`, "filter[0].rate", "incompatible types"},
	{"set-dscp with drop", `[[filter]]
action = "drop"
set-dscp = "ef" #<`, "filter[0].set-dscp", `only with action accept or rate-limit (it marks the packets they let through), not "drop"`},
	{"set-dscp with count", `[[filter]]
action = "count"
set-dscp = 10 #<`, "filter[0].set-dscp", "only with action accept or rate-limit"},
	{"set-dscp bad", `[[filter]]
action = "accept"
set-dscp = 64 #<`, "filter[0].set-dscp", `"64" is not a DSCP 0-63 nor a name`},
	{"set-dscp range", `[[filter]]
action = "accept"
set-dscp = "1-2" #<`, "filter[0].set-dscp", `"1-2" is not a DSCP`},
	{"set-dscp empty", `[[filter]]
action = "accept"
set-dscp = "" #<`, "filter[0].set-dscp", `"" is not a DSCP`},
	{"set-dscp boolean", `[[filter]]
action = "accept"
set-dscp = true #<`, "filter[0].set-dscp", "want an integer or a string; got a boolean"},
	{"continue with count", `[[filter]]
action = "count"
continue = true #<`, "filter[0].continue", "count always continues"},
	{"continue with drop", `[[filter]]
action = "drop"
continue = true #<`, "filter[0].continue", `only with action accept or rate-limit: "drop" is final`},
	{"continue with plain accept", `[[filter]]
action = "accept"
continue = true #<`, "filter[0].continue", "accept with continue = true and no set-dscp does nothing"},
	{"name twice", `[[filter]]
name = "a"
action = "drop"
[[filter]]
name = "a" #<
action = "drop"`, "filter[1].name", `"a" is already the name of filter[0]`},
	{"name clashes with a default", `[[filter]]
name = "filter-2"
action = "drop"
[[filter]] #<
action = "drop"`, "filter[1].name", `"filter-2" (this rule's default name) is already the name of filter[0]`},
	{"name empty", `[[filter]]
name = "" #<
action = "drop"`, "filter[0].name", `must not be empty (leave it out for the default, "filter-1")`},
	{"name control", `[[filter]]
name = "a\tb" #<
action = "drop"`, "filter[0].name", "control characters"},
	{"key case", `[[filter]]
action = "drop"
DPort = 80 #<`, "filter[0].DPort", "unknown key"},
	{"unknown key", `[[filter]]
action = "drop"
proto = "tcp" #<`, "filter[0].proto", "unknown key"},
	{"urpf", `urpf = "on" #<`, "dataplane.urpf", `"on" is not one of off, loose, strict`},
	{"urpf empty", `urpf = "" #<`, "dataplane.urpf", `"" is not one of off, loose, strict`},
	{"urpf-ports mode", `urpf-ports = { eth1 = "loose", eth2 = "Strict" } #<`, "dataplane.urpf-ports.eth2", `"Strict" is not one of off, loose, strict`},
	{"urpf-ports port", `urpf-ports = { eth3 = "loose" } #<`, "dataplane.urpf-ports.eth3", `"eth3" is not in dataplane.interfaces`},
	{"urpf-ports type", `urpf-ports = { eth1 = 1 } #<`, "dataplane.urpf-ports.eth1", "incompatible types"},
	{"urpf-ports table", `[dataplane.urpf-ports]
eth1 = "loose"
eth9 = "loose" #<`, "dataplane.urpf-ports.eth9", `"eth9" is not in dataplane.interfaces`},
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range filterCases {
		t.Run(tc.name, func(t *testing.T) {
			src := filterHeader + tc.body + "\n"
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
					want := fmt.Sprintf("t.toml:%d: %s: ", wantLine, tc.key)
					if !strings.HasPrefix(e.Error(), want) {
						t.Errorf("error %q, want prefix %q", e, want)
					}
					return
				}
			}
			t.Errorf("no error for %s containing %q; got:\n%v", tc.key, tc.msg, err)
		})
	}
}

// TestFilterErrorsJoined: every problem of every rule is reported at once.
func TestFilterErrorsJoined(t *testing.T) {
	_, err := Parse([]byte(filterHeader+`[[filter]]
dport = 70000
action = "drop"
[[filter]]
src = "10.0.0.1/8"
action = "rate-limit"
`), "t.toml")
	got := err.Error()
	for _, want := range []string{
		`t.toml:7: filter[0].dport: "70000" is not a port 0-65535, nor a range LO-HI of them`,
		`t.toml:10: filter[1].src: "10.0.0.1/8" has host bits set; the prefix is 10.0.0.0/8`,
		`t.toml:9: filter[1].rate: must be set with action = "rate-limit"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestFilterMaxRules(t *testing.T) {
	var b strings.Builder
	for range filter.MaxRules {
		b.WriteString("[[filter]]\naction = \"count\"\n")
	}
	rules := rulesOf(t, b.String())
	if len(rules) != filter.MaxRules || rules[filter.MaxRules-1].Name != fmt.Sprintf("filter-%d", filter.MaxRules) {
		t.Fatalf("%d rules", len(rules))
	}
	b.WriteString("[[filter]]\naction = \"count\"\n")
	_, err := Parse([]byte(filterHeader+b.String()), "t.toml")
	want := fmt.Sprintf("t.toml:%d: filter[%d]: one [[filter]] too many: XDP classifies at most %d rules, there are %d",
		5+2*filter.MaxRules+1, filter.MaxRules, filter.MaxRules, filter.MaxRules+1)
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestFilterRulesIfindex(t *testing.T) {
	c, err := Parse([]byte(filterHeader+`[[filter]]
in = ["eth1", "eth2"]
action = "drop"
`), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	failing := errors.New("link not found")
	_, err = c.FilterRules(func(name string) (int, error) {
		if name == "eth2" {
			return 0, failing
		}
		return 1, nil
	})
	if err == nil || err.Error() != `f.toml:7: filter[0].in[1]: interface "eth2": link not found` {
		t.Errorf("err = %v", err)
	}
	if !errors.Is(err, err) || len(allErrors(t, err)) != 1 {
		t.Errorf("err = %v", err)
	}
	if _, err := c.FilterRules(nil); err == nil {
		t.Error("nil ifindex: no error")
	}
	// No in key: ifindex is not called.
	c, err = Parse([]byte(filterHeader+"[[filter]]\naction = \"drop\"\n"), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	if rules, err := c.FilterRules(nil); err != nil || len(rules) != 1 || rules[0].Ingress != nil {
		t.Errorf("rules %+v, err %v", rules, err)
	}
	// No filters.
	if rules, err := (&Config{}).FilterRules(nil); err != nil || len(rules) != 0 {
		t.Errorf("rules %+v, err %v", rules, err)
	}
}

// TestFilterRulesInCode: a config built in code is validated by
// FilterRules too; errors carry the key and no line.
func TestFilterRulesInCode(t *testing.T) {
	c := &Config{
		Dataplane: Dataplane{Interfaces: []string{"eth1"}},
		Filters: []Filter{
			{Dst: "192.0.2.0/24", Protocol: Values{"udp"}, SrcPort: Values{"53", "123"}, In: []string{"eth1"}, Action: "rate-limit", Rate: "1gbps"},
			{DstPort: Values{"x"}, Action: "drop"},
		},
	}
	_, err := c.FilterRules(fakeResolve)
	if err == nil || err.Error() != `filter[1].dport: "x" is not a port 0-65535, nor a range LO-HI of them` {
		t.Fatalf("err = %v", err)
	}
	c.Filters = c.Filters[:1]
	rules, err := c.FilterRules(fakeResolve)
	if err != nil {
		t.Fatal(err)
	}
	want := filter.Rule{Name: "filter-1", Origin: filter.FromConfig, Family: 4, Dst: netip.MustParsePrefix("192.0.2.0/24"),
		Protocols: one(17), SrcPorts: []filter.Range{rg(53, 53), rg(123, 123)}, Ingress: []int{11},
		Action: filter.Action{Kind: filter.RateLimit, BPS: 125_000_000}}
	if !reflect.DeepEqual(rules[0], want) {
		t.Errorf("got\n%+v\nwant\n%+v", rules[0], want)
	}
	// The rules do not share memory with the config.
	rules[0].SrcPorts[0].Lo = 1
	if again, _ := c.FilterRules(fakeResolve); again[0].SrcPorts[0].Lo != 53 {
		t.Error("rules alias each other")
	}
	if c.Filters[0].Name != "" {
		t.Error("FilterRules changed the config")
	}
}

func TestURPF(t *testing.T) {
	c, err := Parse([]byte(header+"[dataplane]\ninterfaces = [\"eth1\", \"eth2\", \"eth3\"]\n"), "u.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataplane.URPF != "off" || c.Dataplane.URPFMode("eth1") != "off" {
		t.Errorf("default: %q, eth1 %q", c.Dataplane.URPF, c.Dataplane.URPFMode("eth1"))
	}
	c, err = Parse([]byte(header+`[dataplane]
interfaces = ["eth1", "eth2", "eth3"]
urpf = "loose"
urpf-ports = { eth1 = "strict", eth2 = "off" }
`), "u.toml")
	if err != nil {
		t.Fatal(err)
	}
	for port, want := range map[string]string{"eth1": "strict", "eth2": "off", "eth3": "loose", "other": "loose"} {
		if got := c.Dataplane.URPFMode(port); got != want {
			t.Errorf("URPFMode(%s) = %q, want %q", port, got, want)
		}
	}
	if got := (Dataplane{}).URPFMode("eth1"); got != URPFOff {
		t.Errorf("zero Dataplane: %q", got)
	}
	if got := (Dataplane{URPFPorts: map[string]string{"eth1": URPFStrict}}).URPFMode("eth1"); got != URPFStrict {
		t.Errorf("override without urpf: %q", got)
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		s        string
		pps, bps uint64
		err      bool
	}{
		{s: "10000pps", pps: 10000},
		{s: "1.5kpps", pps: 1500},
		{s: "2Mpps", pps: 2_000_000},
		{s: "1gpps", pps: 1_000_000_000},
		{s: "0.4pps", err: true},
		{s: "0.6pps", pps: 1},
		{s: "100mbps", bps: 12_500_000},
		{s: "100mbit", bps: 12_500_000},
		{s: "100MBPS", bps: 12_500_000},
		{s: "1gbps", bps: 125_000_000},
		{s: "1Gbit", bps: 125_000_000},
		{s: "500kbps", bps: 62_500},
		{s: "64000bps", bps: 8000},
		{s: "8bit", bps: 1},
		{s: "1.5tbps", bps: 187_500_000_000},
		{s: " 10 pps ", pps: 10},
		{s: "7bps", bps: 1},
		{s: "3bps", err: true},
		{s: "0mbps", err: true},
		{s: "-1pps", err: true},
		{s: "1e3pps", err: true},
		{s: "infpps", err: true},
		{s: "0x10pps", err: true},
		{s: "1.pps", err: true},
		{s: "10", err: true},
		{s: "pps", err: true},
		{s: "10Bps", bps: 1}, // case-insensitive: bits, not bytes
		{s: "10 kb", err: true},
		{s: "", err: true},
	} {
		pps, bps, err := ParseRate(tc.s)
		if (err != nil) != tc.err || pps != tc.pps || bps != tc.bps {
			t.Errorf("ParseRate(%q) = %d, %d, %v; want %d, %d, error %v", tc.s, pps, bps, err, tc.pps, tc.bps, tc.err)
		}
	}
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]filter.Range{rg(10, 20), rg(0, 0), rg(21, 30), rg(5, 5), rg(65535, 65535), rg(65530, 65535), rg(15, 16), rg(1, 1)})
	want := []filter.Range{rg(0, 1), rg(5, 5), rg(10, 30), rg(65530, 65535)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestFilterReparse: what Parse accepts with filters reparses to an equal
// config, and applying the defaults again changes nothing (as FuzzParse
// checks for any input).
func TestFilterReparse(t *testing.T) {
	src := filterHeader + `urpf-ports = { eth1 = "strict" }
[[filter]]
dport = [80, "443"]
tcp-flags = "syn"
fragment = ["no", "first"]
action = "accept"
set-dscp = "ef"
continue = true
`
	a, err := Parse([]byte(src), "r.toml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(src), "r.toml")
	if err != nil || !a.Equal(b) {
		t.Fatalf("reparse: %v", err)
	}
	d := *a
	d.ApplyDefaults()
	if !a.Equal(&d) {
		t.Error("ApplyDefaults changed the config")
	}
	if err := a.Validate(); err != nil {
		t.Error(err)
	}
}

// FuzzFilter: for any [[filter]] table, Parse either fails with *Error
// values naming a key of the file, or FilterRules builds rules that pass
// filter.Rule.Validate, with sorted, merged ranges within their bounds.
func FuzzFilter(f *testing.F) {
	for _, c := range filterCases {
		f.Add(strings.ReplaceAll(c.body, "#<", ""))
	}
	f.Add("[[filter]]\nsrc = \"2001:db8::/32\"\nprotocol = \"icmpv6\"\nicmp-type = [128, \"1-4\"]\naction = \"rate-limit\"\nrate = \"1kpps\"\ncontinue = true\n")
	f.Add("[[filter]]\nport = \"0-65535,1\"\ndscp = \"cs0-cs7\"\nfragment = \"no,first\"\ntcp-flags = [\"syn,!ack\", \"rst\"]\nin = [\"eth1\"]\naction = \"accept\"\nset-dscp = \"af41\"\n")
	f.Fuzz(func(t *testing.T, body string) {
		c, err := Parse([]byte(filterHeader+body), "f.toml")
		if err != nil {
			for _, e := range leaves(err) {
				var ce *Error
				if !errors.As(e, &ce) || ce.File != "f.toml" {
					t.Fatalf("error %q (%T) is not a *config.Error of f.toml", e, e)
				}
			}
			return
		}
		rules, err := c.FilterRules(fakeResolve)
		if err != nil {
			t.Fatalf("FilterRules of an accepted config: %v", err)
		}
		if len(rules) != len(c.Filters) {
			t.Fatalf("%d rules of %d filters", len(rules), len(c.Filters))
		}
		names := map[string]bool{}
		for i := range rules {
			r := &rules[i]
			if r.Origin != filter.FromConfig || r.Name == "" || names[r.Name] {
				t.Fatalf("rule %d: name %q origin %q", i, r.Name, r.Origin)
			}
			names[r.Name] = true
			if err := r.Validate(); err != nil {
				t.Fatalf("rule %d: %v", i, err)
			}
			for _, rs := range [][]filter.Range{r.Protocols, r.SrcPorts, r.DstPorts, r.Ports, r.ICMPTypes, r.ICMPCodes, r.DSCP, r.Lengths} {
				for j, x := range rs {
					if x.Lo > x.Hi || j > 0 && int(rs[j-1].Hi)+1 >= int(x.Lo) {
						t.Fatalf("rule %d: ranges %v not sorted and merged", i, rs)
					}
				}
			}
			if r.Src.IsValid() && r.Src != r.Src.Masked() || r.Dst.IsValid() && r.Dst != r.Dst.Masked() {
				t.Fatalf("rule %d: prefixes %v %v not masked", i, r.Src, r.Dst)
			}
			if r.Action.Kind == filter.RateLimit && (r.Action.PPS == 0) == (r.Action.BPS == 0) {
				t.Fatalf("rule %d: rate %+v", i, r.Action)
			}
			if r.Action.Remark && r.Action.DSCP > 63 {
				t.Fatalf("rule %d: DSCP %d", i, r.Action.DSCP)
			}
		}
	})
}

// FuzzParseRate: an accepted rate is exactly one positive rate.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10000pps", "1.5kpps", "100mbps", "1gbit", "3bps", "0pps", "1e3pps", "99999999tbps"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pps, bps, err := ParseRate(s)
		if err == nil && (pps == 0) == (bps == 0) {
			t.Fatalf("%q -> %d pps, %d B/s", s, pps, bps)
		}
	})
}
