package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/filter"
)

// runIn runs the program on frame as if it arrived on ifindex (0: no
// port), in the ports' namespace, where the kernel resolves it; the frame
// is addressed to the port.
func runIn(t testing.TB, d *Datapath, p ports, ifindex int, frame []byte) (uint32, []byte) {
	t.Helper()
	switch ifindex {
	case p.a:
		copy(frame, macA)
	case p.b:
		copy(frame, macB)
	}
	return checkedRun(t, d, frame, ifindex, p.ns.Do)
}

func setFilters(t *testing.T, d *Datapath, rules ...filter.Rule) {
	t.Helper()
	c, err := filter.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetFilters(c); err != nil {
		t.Fatal(err)
	}
}

func drop(r filter.Rule) filter.Rule { r.Action = filter.Action{Kind: filter.Drop}; return r }

func rng(lo, hi uint16) []filter.Range { return []filter.Range{{Lo: lo, Hi: hi}} }

// IPv4 header byte offsets in a test frame.
const (
	offTOS  = 14 + 1
	offL4v4 = 14 + 20
	offL4v6 = 14 + 40
)

func setTOS(tos byte) func([]byte) { return func(b []byte) { b[offTOS] = tos; fixCsum(b) } }

func setTCPFlags(off int, flags byte) func([]byte) {
	return func(b []byte) { b[off+13] = flags }
}

// Every match field, each with a packet it matches and one it does not.
func TestFilterFields(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	tcp := func(k pkt) pkt { k.proto = protoTCP; k.payload = 12; return k }
	icmp := func(k pkt, typ, code uint16) pkt {
		k.proto = protoICMP
		if k.v6 {
			k.proto = 58
		}
		k.sport = typ<<8 | code
		return k
	}
	withMutate := func(k pkt, f func([]byte)) pkt { k.mutate = f; return k }
	ok4, ok6 := v4("10.2.0.1"), v6("2001:db8:2::1")
	for _, tc := range []struct {
		name       string
		rule       filter.Rule
		in         int // ingress: 0 = port a
		match, not pkt
	}{
		{name: "dst v4", rule: filter.Rule{Dst: pfx("10.2.0.0/24")}, match: ok4, not: v4("10.2.1.1")},
		{name: "dst v6", rule: filter.Rule{Dst: pfx("2001:db8:2::/64")}, match: ok6, not: v6("2001:db8:2:1::1")},
		{name: "src v4", rule: filter.Rule{Src: pfx("172.16.0.0/16")}, match: ok4, not: ok4.with(func(k *pkt) { k.src = ip("172.17.0.1") })},
		{name: "src v6", rule: filter.Rule{Src: pfx("2001:db8:aaaa::/48")}, match: ok6, not: ok6.with(func(k *pkt) { k.src = ip("2001:db8:bbbb::1") })},
		{name: "protocol", rule: filter.Rule{Protocols: rng(17, 17)}, match: ok4, not: tcp(ok4)},
		{name: "protocol v6", rule: filter.Rule{Protocols: rng(6, 6)}, match: tcp(ok6), not: ok6},
		{name: "family", rule: filter.Rule{Family: 4, Protocols: rng(17, 17)}, match: ok4, not: ok6},
		{name: "dport", rule: filter.Rule{DstPorts: rng(50, 60)}, match: ok4, not: ok4.with(func(k *pkt) { k.dport = 61 })},
		{name: "sport", rule: filter.Rule{SrcPorts: rng(1000, 1000)}, match: ok6, not: ok6.with(func(k *pkt) { k.sport = 999 })},
		{name: "port is sport", rule: filter.Rule{Ports: rng(1000, 1000)}, match: ok4, not: ok4.with(func(k *pkt) { k.sport = 7 })},
		{name: "port is dport", rule: filter.Rule{Ports: rng(53, 53)}, match: ok4, not: ok4.with(func(k *pkt) { k.dport = 7 })},
		{name: "ports need ports", rule: filter.Rule{DstPorts: rng(0, 65535)}, match: ok4, not: icmp(ok4, 8, 0)},
		{name: "icmp type", rule: filter.Rule{ICMPTypes: rng(8, 8)}, match: icmp(ok4, 8, 0), not: icmp(ok4, 0, 0)},
		{name: "icmpv6 type", rule: filter.Rule{ICMPTypes: rng(128, 128)}, match: icmp(ok6, 128, 0), not: icmp(ok6, 129, 0)},
		{name: "icmp code", rule: filter.Rule{ICMPCodes: rng(3, 4)}, match: icmp(ok4, 3, 4), not: icmp(ok4, 3, 1)},
		{name: "tcp flags", rule: filter.Rule{TCPFlags: []filter.TCPFlags{{Set: filter.TCPSyn, Clear: filter.TCPAck}}},
			match: withMutate(tcp(ok4), setTCPFlags(offL4v4, 0x02)), not: withMutate(tcp(ok4), setTCPFlags(offL4v4, 0x12))},
		{name: "tcp flags v6", rule: filter.Rule{TCPFlags: []filter.TCPFlags{{Set: filter.TCPRst}}},
			match: withMutate(tcp(ok6), setTCPFlags(offL4v6, 0x04)), not: withMutate(tcp(ok6), setTCPFlags(offL4v6, 0x10))},
		{name: "dscp", rule: filter.Rule{DSCP: rng(46, 46)}, match: withMutate(ok4, setTOS(46<<2)), not: withMutate(ok4, setTOS(10<<2))},
		{name: "later fragment", rule: filter.Rule{Fragments: filter.LaterFragment}, match: ok4.with(func(k *pkt) { k.frag = 0x0010 }), not: ok4},
		{name: "first fragment", rule: filter.Rule{Fragments: filter.FirstFragment}, match: ok4.with(func(k *pkt) { k.frag = 0x2000 }), not: ok4.with(func(k *pkt) { k.frag = 0x0010 })},
		{name: "not a fragment", rule: filter.Rule{Fragments: filter.NotFragment}, match: ok4, not: ok4.with(func(k *pkt) { k.frag = 0x2000 })},
		{name: "length", rule: filter.Rule{Lengths: rng(100, 200)}, match: ok4.with(func(k *pkt) { k.payload = 100 }), not: ok4},
		{name: "length v6", rule: filter.Rule{Lengths: rng(100, 200)}, match: ok6.with(func(k *pkt) { k.payload = 80 }), not: ok6},
		{name: "ingress", rule: filter.Rule{Ingress: []int{p.a}}, match: ok4, not: ok4, in: p.b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := drop(tc.rule)
			r.Name = tc.name // counters follow names
			setFilters(t, d, r)
			in := p.a
			if ret, _ := runIn(t, d, p, in, tc.match.build()); ret != xdpDrop {
				t.Errorf("matching packet: %s, want XDP_DROP", xdpNames[ret])
			}
			if tc.in != 0 {
				in = tc.in
			}
			before := statsMap(t, d)["drop/filter"].Packets
			ret, _ := runIn(t, d, p, in, tc.not.build())
			if ret == xdpDrop {
				t.Errorf("other packet dropped")
			}
			if n := statsMap(t, d)["drop/filter"].Packets - before; n != 0 {
				t.Errorf("drop/filter +%d for the other packet", n)
			}
			fs, err := d.Filters()
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 1 || fs[0].Packets != 1 {
				t.Errorf("filters %+v: want one rule with 1 packet", fs)
			}
		})
	}
}

func TestFilterActions(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	udp53 := filter.Rule{Name: "dns", DstPorts: rng(53, 53)}
	frame := v4("10.2.0.1").build()
	// Each subtest names its rules apart: counters follow a rule's name
	// and match across sets.
	n := 0
	with := func(r filter.Rule, a filter.Action) filter.Rule {
		n++
		r.Name = fmt.Sprintf("%s-%d", r.Name, n)
		r.Action = a
		return r
	}

	t.Run("pass", func(t *testing.T) {
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.Pass}))
		in := v4("10.2.0.1").build()
		ret, out := runIn(t, d, p, p.a, in)
		if ret != xdpPass || string(out) != string(in) {
			t.Errorf("%s (frame changed: %v), want XDP_PASS untouched", xdpNames[ret], string(out) != string(in))
		}
	})
	t.Run("accept stops later rules", func(t *testing.T) {
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.Accept}), with(filter.Rule{Name: "all"}, filter.Action{Kind: filter.Drop}))
		if ret, _ := runIn(t, d, p, p.a, frame); ret != xdpRedirect {
			t.Errorf("%s, want XDP_REDIRECT", xdpNames[ret])
		}
	})
	t.Run("count goes on", func(t *testing.T) {
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.Count}), with(filter.Rule{Name: "all"}, filter.Action{Kind: filter.Drop}))
		if ret, _ := runIn(t, d, p, p.a, frame); ret != xdpDrop {
			t.Errorf("%s, want XDP_DROP", xdpNames[ret])
		}
		fs, _ := d.Filters()
		if len(fs) != 2 || fs[0].Packets != 1 || fs[1].Packets != 1 {
			t.Errorf("filters %+v: want both rules counting 1 packet", fs)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		// 1 packet per second (per CPU: its share): of two packets run at
		// once on one CPU, the second exceeds it. No ingress port: the
		// second run sees the frame the first redirected.
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.RateLimit, PPS: 1}))
		before := statsMap(t, d)
		opts := ebpf.RunOptions{Data: frame, Repeat: 2}
		ret, err := d.Program().Run(&opts)
		if err != nil {
			t.Fatal(err)
		}
		after := statsMap(t, d)
		if ret != xdpDrop || after["drop/rate_limit"].Packets-before["drop/rate_limit"].Packets != 1 ||
			after["redirect/"].Packets-before["redirect/"].Packets != 1 {
			t.Errorf("last verdict %s, redirect +%d, drop/rate_limit +%d: want XDP_DROP, +1, +1", xdpNames[ret],
				after["redirect/"].Packets-before["redirect/"].Packets, after["drop/rate_limit"].Packets-before["drop/rate_limit"].Packets)
		}
		fs, _ := d.Filters()
		if len(fs) != 1 || fs[0].Packets != 2 || fs[0].Dropped != 1 {
			t.Errorf("filters %+v: want 2 packets, 1 dropped", fs)
		}
	})
	t.Run("remark", func(t *testing.T) {
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.Accept, Remark: true, DSCP: 46}))
		in := v4("10.2.0.1").with(func(k *pkt) { k.mutate = setTOS(0x03) }).build() // ECN bits kept
		ret, out := runIn(t, d, p, p.a, in)
		if ret != xdpRedirect {
			t.Fatalf("%s, want XDP_REDIRECT", xdpNames[ret])
		}
		if out[offTOS] != 46<<2|3 || !ipv4ChecksumOK(out[14:34]) {
			t.Errorf("TOS %#x (checksum ok %v), want %#x", out[offTOS], ipv4ChecksumOK(out[14:34]), 46<<2|3)
		}
		in6 := v6("2001:db8:2::1").build()
		if ret, out = runIn(t, d, p, p.a, in6); ret != xdpRedirect {
			t.Fatalf("v6: %s, want XDP_REDIRECT", xdpNames[ret])
		}
		if tc := binary.BigEndian.Uint16(out[14:]) >> 4 & 0xff; tc != 46<<2 {
			t.Errorf("v6 traffic class %#x, want %#x", tc, 46<<2)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		// 10.2.0.1 goes out of port b; the redirect to 10.1.0.9 sends it
		// by that route (port a, gateway A).
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.Accept, Redirect: ip("10.1.0.9")}))
		ret, out := runIn(t, d, p, p.a, v4("10.2.0.1").build())
		if ret != xdpRedirect || string(out[:6]) != string(macGwA) {
			t.Errorf("%s to %x, want XDP_REDIRECT to gateway A %s", xdpNames[ret], out[:6], macGwA)
		}
		// No route to the redirect address: forwarded as without it.
		setFilters(t, d, with(udp53, filter.Action{Kind: filter.Accept, Redirect: ip("8.8.8.8")}))
		ret, out = runIn(t, d, p, p.a, v4("10.2.0.1").build())
		if ret != xdpRedirect || string(out[:6]) != string(macGwB) {
			t.Errorf("unroutable redirect: %s to %x, want XDP_REDIRECT to gateway B", xdpNames[ret], out[:6])
		}
	})
	t.Run("replace keeps counters", func(t *testing.T) {
		dns := with(udp53, filter.Action{Kind: filter.Drop})
		setFilters(t, d, dns)
		runIn(t, d, p, p.a, frame)
		setFilters(t, d, drop(filter.Rule{Name: "other", Dst: pfx("10.9.0.0/16")}), dns)
		runIn(t, d, p, p.a, frame)
		fs, _ := d.Filters()
		if len(fs) != 2 || fs[0].Packets != 0 || fs[1].Packets != 2 {
			t.Errorf("filters %+v: want other 0, dns 2 packets", fs)
		}
		setFilters(t, d)
		if ret, _ := runIn(t, d, p, p.a, frame); ret != xdpRedirect {
			t.Errorf("without filters: %s, want XDP_REDIRECT", xdpNames[ret])
		}
	})
	t.Run("1024 rules", func(t *testing.T) {
		rules := make([]filter.Rule, filter.MaxRules)
		for i := range rules {
			rules[i] = drop(filter.Rule{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)}), 32), DstPorts: rng(uint16(i), uint16(i))})
		}
		rules[len(rules)-1] = drop(filter.Rule{Dst: pfx("10.2.0.1/32"), DstPorts: rng(53, 53)})
		setFilters(t, d, rules...)
		if ret, _ := runIn(t, d, p, p.a, frame); ret != xdpDrop {
			t.Errorf("the last of 1024 rules: %s, want XDP_DROP", xdpNames[ret])
		}
		if ret, _ := runIn(t, d, p, p.a, v4("10.2.0.2").build()); ret != xdpRedirect {
			t.Errorf("no rule: %s, want XDP_REDIRECT", xdpNames[ret])
		}
	})
}

// uRPF per port against the test table: 10.1/16 via port a, 10.2/16 via
// port b, 10.8/16 ECMP over both, 198.51.100/24 blackhole, 10.9/16 kernel
// only, nothing for 8.8.8.8.
func TestURPF(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	from := func(src string) []byte { return v4("10.2.0.1").with(func(k *pkt) { k.src = ip(src) }).build() }
	from6 := func(src string) []byte { return v6("2001:db8:2::1").with(func(k *pkt) { k.src = ip(src) }).build() }
	type want struct {
		ret  uint32
		stat string
	}
	ok := want{xdpRedirect, "redirect/"}
	fail := want{xdpDrop, "drop/urpf"}
	bh := want{xdpDrop, "drop/blackhole_source"}
	for _, tc := range []struct {
		mode                URPFMode
		sameport, otherport want
		ecmp, none, bh, krn want
	}{
		{URPFOff, ok, ok, ok, ok, ok, ok},
		{URPFStrict, ok, fail, ok, fail, bh, want{xdpPass, "pass/urpf_kernel_route"}},
		{URPFLoose, ok, ok, ok, fail, bh, ok},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			if err := p.ns.Do(func() error { return d.SetURPF(p.a, tc.mode) }); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name  string
				frame []byte
				want  want
			}{
				{"source via the ingress port", from("10.1.0.5"), tc.sameport},
				{"source via another port", from("10.2.0.5"), tc.otherport},
				{"source via ECMP", from("10.8.0.5"), tc.ecmp},
				{"source without a route", from("8.8.8.8"), tc.none},
				{"source blackholed", from("198.51.100.7"), tc.bh},
				{"source kernel-only", from("10.9.0.1"), tc.krn},
				{"v6 source via the ingress port", from6("2001:db8:1::5"), tc.sameport},
				{"v6 source via another port", from6("2001:db8:2::5"), tc.otherport},
				{"v6 source without a route", from6("2001:db8:ffff:1::1"), tc.none},
				{"v6 source blackholed", from6("2001:db8:dead::1"), tc.bh},
			} {
				before := statsMap(t, d)[c.want.stat].Packets
				ret, _ := runIn(t, d, p, p.a, c.frame)
				if ret != c.want.ret {
					t.Errorf("%s: %s, want %s", c.name, xdpNames[ret], xdpNames[c.want.ret])
				}
				if n := statsMap(t, d)[c.want.stat].Packets - before; n != 1 {
					t.Errorf("%s: %s +%d, want +1", c.name, c.want.stat, n)
				}
			}
		})
	}
}
