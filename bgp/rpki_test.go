package bgp

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/api"

	"github.com/xdprouter/xdprouter/config"
)

// importStatements returns the statement names and conditions of the
// derived import policy of neighbor addr.
func importStatements(t *testing.T, cfg *config.Config, policy string) []*api.Statement {
	t.Helper()
	p, err := translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range p.policies {
		if pol.Name == policy {
			return pol.Statements
		}
	}
	t.Fatalf("no policy %s", policy)
	return nil
}

func TestRPKIImportStatements(t *testing.T) {
	cfg := func(rpki bool, reject bool, lp uint32) *config.Config {
		c := &config.Config{
			Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
			BGP:    config.BGP{RPKIRejectInvalid: reject, RPKIValidLocalPref: lp},
			Neighbors: []config.Neighbor{
				{Address: "192.0.2.1", PeerASN: 65001, Import: "accept-all"},
				{Address: "192.0.2.2", PeerASN: 65002, Import: "reject-all"},
			},
		}
		if rpki {
			c.RPKI = []config.RPKI{{Address: "192.0.2.10", Port: 8282}}
		}
		return c
	}
	accept := "xdprouter-import-192.0.2.1-accept-all"
	reject := "xdprouter-import-192.0.2.2-reject-all"
	summary := func(sts []*api.Statement) []string {
		var out []string
		for _, st := range sts {
			s := fmt.Sprintf("%s %s", st.GetConditions().GetRpkiResult(), st.GetActions().GetRouteAction())
			if lp := st.GetActions().GetLocalPref(); lp != nil {
				s += fmt.Sprintf(" local-pref %d", lp.Value)
			}
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		c      *config.Config
		policy string
		want   []string
	}{
		{"reject and prefer", cfg(true, true, 200), accept, []string{
			"VALIDATION_STATE_INVALID ROUTE_ACTION_REJECT",
			"VALIDATION_STATE_VALID ROUTE_ACTION_UNSPECIFIED local-pref 200",
			"VALIDATION_STATE_UNSPECIFIED ROUTE_ACTION_ACCEPT",
		}},
		{"reject only", cfg(true, true, 0), accept, []string{
			"VALIDATION_STATE_INVALID ROUTE_ACTION_REJECT",
			"VALIDATION_STATE_UNSPECIFIED ROUTE_ACTION_ACCEPT",
		}},
		{"prefer only", cfg(true, false, 150), accept, []string{
			"VALIDATION_STATE_VALID ROUTE_ACTION_UNSPECIFIED local-pref 150",
			"VALIDATION_STATE_UNSPECIFIED ROUTE_ACTION_ACCEPT",
		}},
		{"no rpki", cfg(false, true, 0), accept, []string{"VALIDATION_STATE_UNSPECIFIED ROUTE_ACTION_ACCEPT"}},
		{"reject-all", cfg(true, true, 200), reject, []string{"VALIDATION_STATE_UNSPECIFIED ROUTE_ACTION_REJECT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summary(importStatements(t, tc.c, tc.policy)); !slices.Equal(got, tc.want) {
				t.Errorf("statements %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestVRPChange(t *testing.T) {
	a := RPKIStatus{Serial: 1, VRPs4: 3, EndOfData: 1, Up: true}
	down := a
	down.Up = false
	b := a
	b.Serial, b.EndOfData = 2, 2
	empty := RPKIStatus{Up: true} // connected, nothing sent yet
	for _, tc := range []struct {
		old, cur []RPKIStatus
		want     bool
	}{
		{nil, nil, false},
		{nil, []RPKIStatus{empty}, false},
		{nil, []RPKIStatus{a}, true},
		{[]RPKIStatus{a}, []RPKIStatus{down}, false}, // session state only
		{[]RPKIStatus{a}, []RPKIStatus{b}, true},
		{[]RPKIStatus{a}, nil, true}, // cache removed with its VRPs
	} {
		if got := vrpChange(zeroVRPs(tc.old), zeroVRPs(tc.cur)); got != tc.want {
			t.Errorf("vrpChange(%+v, %+v) = %v, want %v", tc.old, tc.cur, got, tc.want)
		}
	}
}

// TestReloadStations: Reload adds, removes and replaces RTR caches and
// BMP stations (nothing listens there: GoBGP keeps them, retrying), and
// leaves the policies as a fresh start with the new configuration would.
func TestReloadStations(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2")
	c1 := e.cfg([]config.Neighbor{e.nbr("127.0.0.2")})
	c1.RPKI = []config.RPKI{{Address: "127.0.0.1", Port: 1, Lifetime: 60}, {Address: "::1", Port: 2}}
	c1.BMP = []config.BMP{{Address: "127.0.0.1", Port: 3, RouteMonitoring: config.BMPPrePolicy}}
	e.start(c1)
	ctx := context.Background()
	check := func(wantRPKI, wantBMP []string) {
		t.Helper()
		var rpki, bmp []string
		if err := e.server().ListRpki(ctx, &api.ListRpkiRequest{}, func(r *api.Rpki) {
			rpki = append(rpki, fmt.Sprintf("%s/%d", r.GetConf().GetAddress(), r.GetConf().GetRemotePort()))
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.server().ListBmp(ctx, &api.ListBmpRequest{}, func(b *api.ListBmpResponse_BmpStation) {
			bmp = append(bmp, fmt.Sprintf("%s/%d", b.GetConf().GetAddress(), b.GetConf().GetPort()))
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(rpki)
		slices.Sort(bmp)
		if !slices.Equal(rpki, wantRPKI) || !slices.Equal(bmp, wantBMP) {
			t.Errorf("rpki %v, bmp %v; want %v, %v", rpki, bmp, wantRPKI, wantBMP)
		}
	}
	check([]string{"127.0.0.1/1", "::1/2"}, []string{"127.0.0.1/3"})
	st, err := e.s.BMP(ctx)
	if err != nil || len(st) != 1 || st[0].Up {
		t.Errorf("BMP() = %+v, %v; want one station, down", st, err)
	}

	c2 := e.cfg([]config.Neighbor{e.nbr("127.0.0.2")})
	c2.BGP.RPKIRejectInvalid, c2.BGP.RPKIValidLocalPref = true, 200
	c2.RPKI = []config.RPKI{{Address: "127.0.0.1", Port: 1, Lifetime: 120}, {Address: "127.0.0.1", Port: 4}}
	c2.BMP = []config.BMP{{Address: "127.0.0.1", Port: 3, RouteMonitoring: config.BMPPostPolicy}, {Address: "::1", Port: 5}}
	e.mustReload(c2)
	check([]string{"127.0.0.1/1", "127.0.0.1/4"}, []string{"127.0.0.1/3", "::1/5"})
	e.checkPolicyState(c2)
	e.mustReload(c2) // nothing to do
	check([]string{"127.0.0.1/1", "127.0.0.1/4"}, []string{"127.0.0.1/3", "::1/5"})

	c3 := e.cfg([]config.Neighbor{e.nbr("127.0.0.2")})
	e.mustReload(c3)
	check(nil, nil)
	e.checkPolicyState(c3)
}
