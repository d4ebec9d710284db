package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/lab"
)

// filterInfo is one entry of GET /api/v1/filters.
type filterInfo struct {
	Name    string `json:"name"`
	Origin  string `json:"origin"`
	Peer    string `json:"peer"`
	Match   string `json:"match"`
	Action  string `json:"action"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// filters asks the daemon's API for the filter rules in force.
func (r *router) filters() ([]filterInfo, error) {
	c := r.HTTPClient("r")
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://127.0.0.1:" + lab.MetricsPort + "/api/v1/filters")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/filters: %s", resp.Status)
	}
	var out []filterInfo
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// TestFlowspecFromBIRD: a BIRD 2 upstream announces its prefixes and two
// Flowspec rules (IPv4: discard DNS to 100.64.0.0/24; IPv6: ICMPv6 to
// 2001:db8:1000::/48 limited to 1000 bytes/s) to a neighbor with
// flowspec = true. The sessions come up with the Flowspec families (BIRD's
// flow channels up, exporting), GoBGP's RIB holds both rules, and the
// daemon's API lists them as flowspec filters from the peer (validated:
// BIRD announces the unicast routes too).
func TestFlowspecFromBIRD(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	p := r.peer(up1, announced(10, 2))
	p.Flowspec = []string{
		"flow4 { dst 100.64.0.0/24; proto = 17; dport = 53; } { bgp_ext_community.add((generic, 0x80060000, 0)); }",
		"flow6 { dst 2001:db8:1000::/48; next header = 58; } { bgp_ext_community.add((generic, 0x80060000, 0x447a0000)); }",
	}
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	pin := r.pinned()
	r.start(neighbors("flowspec = true", up1))
	r.waitRoutes("learned from BIRD", 10, 2)

	// BIRD: both sessions up with the flow channel, each exporting its rule.
	for peer, ch := range map[string]string{"peer0": "flow4", "peer1": "flow6"} {
		r.poll(20*time.Second, func() error {
			out, err := r.BirdC(p, "show", "protocols", "all", peer)
			if err != nil {
				return err
			}
			i := strings.Index(out, "Channel "+ch)
			if i < 0 {
				return fmt.Errorf("%s has no %s channel:\n%s", peer, ch, out)
			}
			sec := out[i:]
			if j := strings.Index(sec[1:], "Channel "); j >= 0 {
				sec = sec[:j+1]
			}
			if !strings.Contains(sec, "UP") || !strings.Contains(sec, "1 exported") {
				return fmt.Errorf("%s channel %s not up and exporting one route:\n%s", peer, ch, sec)
			}
			return nil
		})
	}

	// GoBGP's RIB (the stock CLI) holds both rules.
	for fam, want := range map[string]string{"ipv4-flowspec": "100.64.0.0/24", "ipv6-flowspec": "2001:db8:1000::/48"} {
		r.poll(10*time.Second, func() error {
			out, err := r.Output("r", filepath.Join(bin, "gobgp"), "-p", lab.GRPCPort, "global", "rib", "-a", fam)
			if err != nil {
				return err
			}
			if !strings.Contains(out, want) {
				return fmt.Errorf("gobgp global rib -a %s: no %s:\n%s", fam, want, out)
			}
			return nil
		})
	}

	// The daemon applies them: GET /api/v1/filters.
	r.poll(10*time.Second, func() error {
		fs, err := r.filters()
		if err != nil {
			return err
		}
		found := map[string]bool{}
		for _, f := range fs {
			if f.Origin != "flowspec" {
				continue
			}
			for _, want := range []struct{ dst, peer string }{{"100.64.0.0/24", up1.v4()}, {"2001:db8:1000::/48", up1.v6()}} {
				if strings.Contains(f.Name, want.dst) && f.Peer == want.peer {
					found[want.dst] = true
				}
			}
		}
		if len(found) != 2 {
			return fmt.Errorf("want the IPv4 and IPv6 Flowspec rules from BIRD, got %+v", fs)
		}
		return nil
	})

	// XDP enforces the IPv4 rule: DNS to 100.64.0.0/24 is dropped, other
	// UDP to it is not. Withdrawn (BIRD's static flow protocol disabled)
	// and announced again, the rule leaves and returns.
	x := r.xdp(pin)
	src, dst := netip.MustParseAddr(lab.H1v4), netip.MustParseAddr("100.64.0.9")
	dns := func() uint32 { return x.run("eth1", udp4(src, dst, 1000, 53, 10)) }
	if ret := dns(); ret != xdpDrop {
		t.Errorf("DNS to 100.64.0.9: verdict %d, want XDP_DROP", ret)
	}
	if ret := x.run("eth1", udp4(src, dst, 1000, 54, 10)); ret == xdpDrop {
		t.Error("UDP port 54 to 100.64.0.9 dropped: the rule matches port 53 only")
	}
	for _, step := range []struct {
		cmd  string
		drop bool
	}{{"disable", false}, {"enable", true}} {
		start := time.Now()
		if _, err := r.BirdC(p, step.cmd, "static_flow4"); err != nil {
			t.Fatal(err)
		}
		err := lab.PollEvery(context.Background(), 10*time.Second, time.Millisecond, func() error {
			if (dns() == xdpDrop) != step.drop {
				return fmt.Errorf("DNS to 100.64.0.9 dropped=%v after birdc %s static_flow4", !step.drop, step.cmd)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// BIRD's UPDATE, GoBGP, validation, compile and the map writes.
		t.Logf("birdc %s static_flow4 → enforced in XDP (drop=%v) after %v", step.cmd, step.drop, time.Since(start).Round(time.Millisecond))
	}
}

// TestFlowspecSurvivesRestart: a Flowspec rule in force stays in force in
// XDP while xdprouterd is killed (-9) and restarted on its pinned
// dataplane: the restarted daemon keeps the previous instance's filters
// until BGP has converged again, then writes the set it re-learned.
func TestFlowspecSurvivesRestart(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	p := r.peer(up1, announced(10, 2))
	p.Flowspec = []string{"flow4 { dst 100.64.0.0/24; proto = 17; dport = 53; } { bgp_ext_community.add((generic, 0x80060000, 0)); }"}
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	pin := r.pinned()
	cfg := neighbors("flowspec = true", up1)
	r.start(cfg)
	x := r.xdp(pin)
	src, dst := netip.MustParseAddr(lab.H1v4), netip.MustParseAddr("100.64.0.9")
	dropped := func() bool { return x.run("eth1", udp4(src, dst, 1000, 53, 10)) == xdpDrop }
	r.poll(20*time.Second, func() error {
		if !dropped() {
			return errors.New("DNS to 100.64.0.9 not dropped yet")
		}
		return nil
	})

	if err := r.daemon.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.poll(10*time.Second, func() error {
		if exited, _ := r.daemon.Exited(); !exited {
			return errors.New("still running")
		}
		return nil
	})
	if !dropped() {
		t.Error("the rule lifted while no daemon runs")
	}
	r.start(cfg)
	// From the restarted daemon's first moment until BGP has the rule in
	// force again (and a little after), every probe is dropped.
	samples, lifted := 0, 0
	var inForceAt time.Time
	err := lab.PollEvery(context.Background(), 30*time.Second, time.Millisecond, func() error {
		samples++
		if !dropped() {
			lifted++
		}
		if inForceAt.IsZero() {
			var fs []filterInfo
			if err := r.ctl(&fs, "filters"); err == nil && strings.Contains(r.daemon.Out.String(), "filters in force") {
				for _, f := range fs {
					if f.Origin == "flowspec" && strings.Contains(f.Name, "100.64.0.0/24") {
						inForceAt = time.Now()
					}
				}
			}
			return errors.New("waiting for the re-learned rule")
		}
		if time.Since(inForceAt) < 200*time.Millisecond {
			return errors.New("a little after")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if lifted > 0 {
		t.Errorf("the rule was lifted in %d of %d probes across the restart", lifted, samples)
	}
	if !strings.Contains(r.daemon.Out.String(), "the previous instance's filters stay in force") {
		t.Errorf("the restarted daemon did not hold the previous filters:\n%s", r.daemon.Out.String())
	}
}
