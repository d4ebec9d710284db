package bgp

import (
	"context"
	"errors"
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
	maxPrefixesShutdownsDesc = prometheus.NewDesc("xdprouter_bgp_max_prefixes_shutdowns_total",
		"Sessions with the neighbor shut down because it sent more than max-prefixes.",
		[]string{"peer"}, nil)
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
	ch <- maxPrefixesShutdownsDesc
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
		up := 0.0
		if p.Up {
			up = 1
		}
		addr := p.Address.String()
		ch <- prometheus.MustNewConstMetric(peerUpDesc, prometheus.GaugeValue, up, addr)
		ch <- prometheus.MustNewConstMetric(receivedPrefixesDesc, prometheus.GaugeValue, float64(p.Received), addr)
	}
	c.s.tripsMu.Lock()
	defer c.s.tripsMu.Unlock()
	for a, n := range c.s.trips {
		ch <- prometheus.MustNewConstMetric(maxPrefixesShutdownsDesc, prometheus.CounterValue, float64(n), a.String())
	}
}
