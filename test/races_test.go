package test

import "testing"

// TestRaces: a report whose accesses are both GoBGP's is upstream; one
// with a frame of ours is ours.
func TestRaces(t *testing.T) {
	const upstream = `==================
WARNING: DATA RACE
Write at 0x00c0000ff6d0 by goroutine 73:
  github.com/osrg/gobgp/v4/pkg/server.(*roaClient).softReset()
      /root/go/pkg/mod/github.com/osrg/gobgp/v4@v4.8.0/pkg/server/rpki.go:392 +0x2c4

Previous read at 0x00c0000ff6d0 by goroutine 36:
  github.com/osrg/gobgp/v4/pkg/server.(*roaManager).GetServers()
      /root/go/pkg/mod/github.com/osrg/gobgp/v4@v4.8.0/pkg/server/rpki.go:335 +0x5f1
  github.com/xdprouter/xdprouter/bgp.(*Speaker).Start.gowrap2()
      /tmp/wt/bgp/speaker.go:259 +0x2e
==================
`
	const ours = `==================
WARNING: DATA RACE
Read at 0x00c0001 by goroutine 7:
  github.com/xdprouter/xdprouter/bgp.(*Speaker).Peers()
      /tmp/wt/bgp/speaker.go:500 +0x2e

Previous write at 0x00c0001 by goroutine 9:
  github.com/osrg/gobgp/v4/pkg/server.(*BgpServer).Serve()
      /root/go/pkg/mod/github.com/osrg/gobgp/v4@v4.8.0/pkg/server/server.go:422 +0x5dd
==================
`
	for _, tc := range []struct {
		out              string
		ours, upstreamed int
	}{
		{"", 0, 0},
		{upstream, 0, 1},
		{ours, 1, 0},
		{upstream + "log line\n" + ours + upstream, 1, 2},
	} {
		if o, u := races(tc.out); o != tc.ours || u != tc.upstreamed {
			t.Errorf("races = %d ours, %d upstream; want %d, %d in:\n%s", o, u, tc.ours, tc.upstreamed, tc.out)
		}
	}
}
