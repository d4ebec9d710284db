package bgp

// BMP (RFC 7854) export with GoBGP's BMP client: each [[bmp]] station is
// one GoBGP BMP server (AddBmp). GoBGP connects (and reconnects, backing
// off up to 30 s), sends Initiation, a Peer Up per established session
// and Route Monitoring for the routes the station's route-monitoring
// selects (the current ones first), Peer Down when a session drops, and
// Termination when the station is removed.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/version"
)

// BMPStatus is the state of one [[bmp]] station.
type BMPStatus struct {
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
	Up      bool       `json:"up"`
}

func bmpPolicy(s string) api.AddBmpRequest_MonitoringPolicy {
	switch s {
	case config.BMPPostPolicy:
		return api.AddBmpRequest_MONITORING_POLICY_POST
	case config.BMPLocalRIB:
		return api.AddBmpRequest_MONITORING_POLICY_LOCAL
	case config.BMPAll:
		return api.AddBmpRequest_MONITORING_POLICY_ALL
	}
	return api.AddBmpRequest_MONITORING_POLICY_PRE
}

// translateBMP returns the AddBmp requests of the [[bmp]] stations.
func translateBMP(cfg *config.Config) []*api.AddBmpRequest {
	var out []*api.AddBmpRequest
	for _, b := range cfg.BMP {
		a, err := netip.ParseAddr(b.Address)
		if err != nil {
			continue // validated
		}
		port := b.Port
		if port == 0 {
			port = config.DefaultBMPPort
		}
		out = append(out, &api.AddBmpRequest{
			Address:           a.Unmap().String(),
			Port:              port,
			Policy:            bmpPolicy(b.RouteMonitoring),
			StatisticsTimeout: int32(b.StatisticsInterval),
			SysName:           "xdprouter",
			SysDescr:          "xdprouter " + version.Get().String(),
		})
	}
	return out
}

func addBMP(ctx context.Context, srv *server.BgpServer, reqs []*api.AddBmpRequest) error {
	for _, r := range reqs {
		if err := srv.AddBmp(ctx, r); err != nil {
			return fmt.Errorf("bmp %s port %d: %w", r.Address, r.Port, err)
		}
	}
	return nil
}

func deleteBMP(ctx context.Context, srv *server.BgpServer, reqs []*api.AddBmpRequest) error {
	var errs []error
	for _, r := range reqs {
		if err := srv.DeleteBmp(ctx, &api.DeleteBmpRequest{Address: r.Address, Port: r.Port}); err != nil {
			errs = append(errs, fmt.Errorf("bmp %s port %d: %w", r.Address, r.Port, err))
		}
	}
	return errors.Join(errs...)
}

// BMP reports the state of the [[bmp]] stations, sorted by address and
// port. GoBGP keeps connect and disconnect times in whole seconds: a
// station that dropped within the second it connected shows as up
// until the next attempt.
func (s *Speaker) BMP(ctx context.Context) ([]BMPStatus, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, ErrNotRunning
	}
	var out []BMPStatus
	err := srv.ListBmp(ctx, &api.ListBmpRequest{}, func(st *api.ListBmpResponse_BmpStation) {
		a, _ := netip.ParseAddr(st.GetConf().GetAddress())
		up, down := st.GetState().GetUptime(), st.GetState().GetDowntime()
		// GoBGP leaves a time it never set at 0 (the epoch).
		u, d := up.GetSeconds(), down.GetSeconds()
		out = append(out, BMPStatus{Address: a, Port: uint16(st.GetConf().GetPort()), Up: u > 0 && u >= d})
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list bmp: %w", err)
	}
	slices.SortFunc(out, func(a, b BMPStatus) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	return out, nil
}
