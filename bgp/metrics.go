package bgp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	peerUpDesc = prometheus.NewDesc("xdprouter_bgp_peer_up",
		"Whether the BGP session with the neighbor is established (1) or not (0).",
		[]string{"peer"}, nil)
	receivedPrefixesDesc = prometheus.NewDesc("xdprouter_bgp_received_prefixes",
		"Prefixes received from the neighbor (Adj-RIB-In, before import policy).",
		[]string{"peer"}, nil)
	bfdUpDesc = prometheus.NewDesc("xdprouter_bgp_bfd_up",
		"Whether the BFD session with the neighbor is up (1) or not (0); only for neighbors with bfd = true.",
		[]string{"peer"}, nil)
	peerRestartingDesc = prometheus.NewDesc("xdprouter_bgp_peer_restarting",
		"Whether the neighbor is in graceful restart (1): its session dropped and its routes are kept, stale, until its End-of-RIB or restart time.",
		[]string{"peer"}, nil)
	maxPrefixesShutdownsDesc = prometheus.NewDesc("xdprouter_bgp_max_prefixes_shutdowns_total",
		"Sessions with the neighbor shut down because it sent more than max-prefixes.",
		[]string{"peer"}, nil)
	rpkiUpDesc = prometheus.NewDesc("xdprouter_rpki_session_up",
		"Whether the RTR session with the [[rpki]] cache is up (1) or not (0).",
		[]string{"server"}, nil)
	rpkiVRPsDesc = prometheus.NewDesc("xdprouter_rpki_vrps",
		"Validated ROA payloads received from the [[rpki]] cache and in use, per family (ipv4, ipv6).",
		[]string{"server", "family"}, nil)
	rpkiRevalidationsDesc = prometheus.NewDesc("xdprouter_rpki_revalidations_total",
		"Times every neighbor's paths were re-evaluated against changed VRPs.",
		nil, nil)
	bmpUpDesc = prometheus.NewDesc("xdprouter_bmp_session_up",
		"Whether the connection to the [[bmp]] station is up (1) or not (0).",
		[]string{"station"}, nil)
	dynamicSessionsDesc = prometheus.NewDesc("xdprouter_bgp_dynamic_sessions",
		"Sessions admitted from the [[dynamic-neighbor]] range (at most its limit).",
		[]string{"range"}, nil)
	dynamicRefusedDesc = prometheus.NewDesc("xdprouter_bgp_dynamic_refused_total",
		"Sessions from the [[dynamic-neighbor]] range closed because the range was at its limit.",
		[]string{"range"}, nil)
)

// collectTimeout bounds a scrape's wait for GoBGP's management loop.
const collectTimeout = 5 * time.Second

type collector struct{ s *Speaker }

// Collector returns a Prometheus collector that reads the peer table at
// scrape time. A stopped speaker yields no samples.
func (s *Speaker) Collector() prometheus.Collector { return collector{s} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- peerUpDesc
	ch <- receivedPrefixesDesc
	ch <- bfdUpDesc
	ch <- peerRestartingDesc
	ch <- maxPrefixesShutdownsDesc
	ch <- rpkiUpDesc
	ch <- rpkiVRPsDesc
	ch <- rpkiRevalidationsDesc
	ch <- bmpUpDesc
	ch <- dynamicSessionsDesc
	ch <- dynamicRefusedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	peers, err := c.s.Peers(ctx)
	if errors.Is(err, ErrNotRunning) {
		return
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(peerUpDesc, err)
		return
	}
	for _, p := range peers {
		if !p.Address.IsValid() {
			continue // an unnumbered neighbor without a peer yet: no session
		}
		up := 0.0
		if p.Up {
			up = 1
		}
		addr := p.Address.String()
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, up, addr)
		ch <- prometheus.MustNewConstMetric(receivedPrefixesDesc, prometheus.GaugeValue, float64(p.Received), addr)
		ch <- prometheus.MustNewConstMetric(peerRestartingDesc, prometheus.GaugeValue, boolValue(p.PeerRestarting), addr)
		if p.BFD != "" {
			ch <- prometheus.MustNewConstMetric(bfdUpDesc, prometheus.GaugeValue, boolValue(p.BFD == "up"), addr)
		}
	}
	c.collectStations(ctx, ch)
	c.s.tripsMu.Lock()
	for a, n := range c.s.trips {
		ch <- prometheus.MustNewConstMetric(maxPrefixesShutdownsDesc, prometheus.CounterValue, float64(n), a.String())
	}
	c.s.tripsMu.Unlock()
	sessions, refused := c.s.dynamicCounts()
	for r, n := range sessions {
		ch <- prometheus.MustNewConstMetric(dynamicSessionsDesc, prometheus.GaugeValue, float64(n), r.String())
	}
	for r, n := range refused {
		ch <- prometheus.MustNewConstMetric(dynamicRefusedDesc, prometheus.CounterValue, float64(n), r.String())
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectStations reports the RTR caches (from watchRPKI's last poll: no
// walk of the ROA table per scrape) and the BMP stations.
func (c collector) collectStations(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.s.hasRPKI() {
		ch <- prometheus.MustNewConstMetric(rpkiRevalidationsDesc, prometheus.CounterValue, float64(c.s.revalidations.Load()))
	}
	for _, r := range c.s.RPKI() {
		server := netip.AddrPortFrom(r.Address, r.Port).String()
		ch <- prometheus.MustNewConstMetric(rpkiUpDesc, prometheus.GaugeValue, boolValue(r.Up), server)
		ch <- prometheus.MustNewConstMetric(rpkiVRPsDesc, prometheus.GaugeValue, float64(r.VRPs4), server, "ipv4")
		ch <- prometheus.MustNewConstMetric(rpkiVRPsDesc, prometheus.GaugeValue, float64(r.VRPs6), server, "ipv6")
	}
	bmp, err := c.s.BMP(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(bmpUpDesc, err)
		return
	}
	for _, b := range bmp {
		ch <- prometheus.MustNewConstMetric(bmpUpDesc, prometheus.GaugeValue, boolValue(b.Up), netip.AddrPortFrom(b.Address, b.Port).String())
	}
}
