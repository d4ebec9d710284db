package bgp

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func tpath(t *testing.T, pfx, nh, peer string, withdraw bool) *apiutil.Path {
	t.Helper()
	p := netip.MustParsePrefix(pfx)
	nlri, _ := bgp.NewIPAddrPrefix(p)
	var attrs []bgp.PathAttributeInterface
	if p.Addr().Is4() {
		a, _ := bgp.NewPathAttributeNextHop(netip.MustParseAddr(nh))
		attrs = append(attrs, a)
	} else {
		a, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, netip.MustParseAddr(nh))
		attrs = append(attrs, a)
	}
	path := &apiutil.Path{Family: familyOf(p), Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}
	if peer != "" {
		path.PeerAddress = netip.MustParseAddr(peer)
		path.PeerASN = 65001
	}
	return path
}

func ups(pairs ...any) []PathUpdate {
	var out []PathUpdate
	for i := 0; i < len(pairs); i += 2 {
		u := PathUpdate{Prefix: netip.MustParsePrefix(pairs[i].(string))}
		for _, a := range pairs[i+1].([]string) {
			u.NextHops = append(u.NextHops, netip.MustParseAddr(a))
		}
		out = append(out, u)
	}
	return out
}

func TestBestTrackerSingle(t *testing.T) {
	tr := newBestTracker(false, nil, nil)
	steps := []struct {
		name  string
		paths []*apiutil.Path
		want  []PathUpdate
	}{
		{"replay", []*apiutil.Path{
			tpath(t, "10.0.0.0/24", "192.0.2.1", "192.0.2.1", false),
			tpath(t, "2001:db8:1::/48", "2001:db8::1", "2001:db8::1", false),
			tpath(t, "198.51.100.0/24", "0.0.0.0", "", false), // ours: nothing to install
		}, ups("10.0.0.0/24", []string{"192.0.2.1"}, "2001:db8:1::/48", []string{"2001:db8::1"}, "198.51.100.0/24", []string{})},
		{"same next hop again is repeated (sync's diff makes it free)", []*apiutil.Path{tpath(t, "10.0.0.0/24", "192.0.2.1", "192.0.2.1", false)},
			ups("10.0.0.0/24", []string{"192.0.2.1"})},
		{"best moves to other peer", []*apiutil.Path{tpath(t, "10.0.0.0/24", "192.0.2.2", "192.0.2.2", false)},
			ups("10.0.0.0/24", []string{"192.0.2.2"})},
		{"local path becomes best", []*apiutil.Path{tpath(t, "10.0.0.0/24", "0.0.0.0", "", false)},
			ups("10.0.0.0/24", []string{})},
		{"withdraw of unknown prefix", []*apiutil.Path{tpath(t, "10.9.0.0/24", "192.0.2.2", "192.0.2.2", true)},
			ups("10.9.0.0/24", []string{})},
		{"withdraw", []*apiutil.Path{tpath(t, "2001:db8:1::/48", "2001:db8::1", "2001:db8::1", true)},
			ups("2001:db8:1::/48", []string{})},
	}
	for _, s := range steps {
		got := tr.apply(s.paths)
		if !equalUpdates(got, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

func TestBestTrackerMultipath(t *testing.T) {
	tr := newBestTracker(true, nil, nil)
	steps := []struct {
		name  string
		paths []*apiutil.Path
		want  []PathUpdate
	}{
		{"replay of two sets", []*apiutil.Path{
			tpath(t, "10.0.0.0/24", "192.0.2.2", "192.0.2.2", false),
			tpath(t, "10.0.0.0/24", "192.0.2.1", "192.0.2.1", false),
			tpath(t, "10.1.0.0/24", "192.0.2.1", "192.0.2.1", false),
		}, ups("10.0.0.0/24", []string{"192.0.2.1", "192.0.2.2"}, "10.1.0.0/24", []string{"192.0.2.1"})},
		{"third member, same next hop as another (dedup)", []*apiutil.Path{tpath(t, "10.1.0.0/24", "192.0.2.1", "192.0.2.9", false)},
			ups("10.1.0.0/24", []string{"192.0.2.1"})},
		{"member leaves", []*apiutil.Path{tpath(t, "10.0.0.0/24", "192.0.2.2", "192.0.2.2", true)},
			ups("10.0.0.0/24", []string{"192.0.2.1"})},
		{"delta: withdraw one, add one", []*apiutil.Path{
			tpath(t, "10.0.0.0/24", "192.0.2.1", "192.0.2.1", true),
			tpath(t, "10.0.0.0/24", "192.0.2.3", "192.0.2.3", false),
		}, ups("10.0.0.0/24", []string{"192.0.2.3"})},
		{"last member leaves", []*apiutil.Path{tpath(t, "10.0.0.0/24", "192.0.2.3", "192.0.2.3", true)},
			ups("10.0.0.0/24", []string{})},
	}
	for _, s := range steps {
		got := tr.apply(s.paths)
		if !equalUpdates(got, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

func equalUpdates(a, b []PathUpdate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Prefix != b[i].Prefix || len(a[i].NextHops) != len(b[i].NextHops) {
			return false
		}
		if len(a[i].NextHops) > 0 && !reflect.DeepEqual(a[i].NextHops, b[i].NextHops) {
			return false
		}
	}
	return true
}

// TestBestTrackerPeer: updates name the peer of the best path (for
// multipath, the member with the lowest next hop), which sync bounds
// next-hop groups by.
func TestBestTrackerPeer(t *testing.T) {
	got := newBestTracker(false, nil, nil).apply([]*apiutil.Path{tpath(t, "10.0.0.0/24", "192.0.2.9", "192.0.2.1", false)})
	if len(got) != 1 || got[0].Peer != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("single: %+v, want peer 192.0.2.1", got)
	}
	got = newBestTracker(true, nil, nil).apply([]*apiutil.Path{
		tpath(t, "10.0.0.0/24", "192.0.2.8", "192.0.2.2", false),
		tpath(t, "10.0.0.0/24", "192.0.2.7", "192.0.2.3", false),
	})
	if len(got) != 1 || got[0].Peer != netip.MustParseAddr("192.0.2.3") {
		t.Errorf("multipath: %+v, want peer 192.0.2.3 (lowest next hop)", got)
	}
}
