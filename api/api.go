// Package api is the small read-only JSON API xdprouterd serves next to
// /metrics for xdprouterctl: the daemon holds the maps and the sync state,
// so the CLI needs no BPF filesystem access of its own.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bypass"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/filter"
	xsync "github.com/xdprouter/xdprouter/sync"
	"github.com/xdprouter/xdprouter/version"
)

// Interface is a router port with XDP attached.
type Interface struct {
	Name    string `json:"name"`
	Ifindex int    `json:"ifindex"`
	Mode    string `json:"xdp_mode"`
	// NoRedirect says why XDP does not send frames out of this port (they
	// are passed to the kernel as egress_not_xdp); empty if it does.
	NoRedirect string `json:"no_redirect,omitempty"`
}

// Status is the answer of /api/v1/status.
type Status struct {
	Interfaces []Interface       `json:"interfaces"`
	Lookup     Lookup            `json:"lookup"`
	Routes     xsync.Counts      `json:"routes"`
	Peers      []bgp.PeerStatus  `json:"peers"`
	Stats      []bpf.StatCounter `json:"stats"`
	// Bypass is the kernel policy (netfilter, ip rules, rp_filter) that
	// packets XDP forwards do not meet.
	Bypass []bypass.Finding `json:"bypass,omitempty"`
	// RPKI are the [[rpki]] caches, BMP the [[bmp]] stations.
	RPKI []bgp.RPKIStatus `json:"rpki,omitempty"`
	BMP  []bgp.BMPStatus  `json:"bmp,omitempty"`
	// Version is the daemon's build (xdprouterctl version).
	Version version.Info `json:"version"`
}

// Lookup is the route lookup structure XDP walks, and why it is the trie
// when the compiled one was asked for.
type Lookup struct {
	Structure string `json:"structure"` // compiled | trie
	Fallback  string `json:"fallback,omitempty"`
}

// Neighbor is an entry of the XDP neighbor map.
type Neighbor struct {
	Ifindex int        `json:"ifindex"`
	Addr    netip.Addr `json:"addr"`
	MAC     string     `json:"mac"`
}

// Backend is what the daemon exposes.
type Backend struct {
	Datapath   *bpf.Datapath
	Sync       *xsync.Syncer
	BGP        *bgp.Speaker // nil when BGP is off
	Interfaces []Interface
	Bypass     *bypass.Watcher // nil: not watched
	// Rejected lists the Flowspec rules not in force; nil: none.
	Rejected func() []bgp.Rejected
	// RouteGet asks the kernel for a flow's route (lookup); nil:
	// fib.RouteGet in the daemon's namespace.
	RouteGet func(fib.RouteQuery) (fib.KernelRoute, error)
}

// Filter is one filter rule: in force (with its counters, in the order
// XDP applies them) or a Flowspec rule not in force, with the reason.
type Filter struct {
	Name    string `json:"name"`
	Origin  string `json:"origin"` // config | flowspec
	Peer    string `json:"peer,omitempty"`
	Match   string `json:"match"`
	Action  string `json:"action"`
	InForce bool   `json:"in_force"`
	Reason  string `json:"reason,omitempty"` // why not in force
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Dropped uint64 `json:"dropped,omitempty"` // by its rate limit
}

// ActionString describes a rule's action, parameters included.
func ActionString(a filter.Action) string {
	s := a.Kind.String()
	switch {
	case a.PPS != 0:
		s += fmt.Sprintf(" %dpps", a.PPS)
	case a.BPS != 0:
		s += fmt.Sprintf(" %dB/s", a.BPS)
	}
	if a.Remark {
		s += fmt.Sprintf(" dscp=%d", a.DSCP)
	}
	if a.Redirect.IsValid() {
		s += " redirect=" + a.Redirect.String()
	}
	if a.Continue {
		s += " continue"
	}
	return s
}

// Handler serves /api/v1/{status,routes,lookup,trace,nexthops,neighbors,stats,filters}.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		st := Status{Routes: b.Sync.Counts(), Version: version.Get()}
		mode, why := b.Datapath.LookupState()
		st.Lookup = Lookup{Structure: mode.String(), Fallback: why}
		for _, i := range b.Interfaces {
			if ok, why := b.Datapath.RedirectTarget(i.Ifindex); !ok {
				i.NoRedirect = why
			}
			st.Interfaces = append(st.Interfaces, i)
		}
		if b.BGP != nil {
			peers, err := b.BGP.Peers(r.Context())
			if err != nil {
				fail(w, http.StatusInternalServerError, err)
				return
			}
			st.Peers = peers
			st.RPKI = b.BGP.RPKI()
			if st.BMP, err = b.BGP.BMP(r.Context()); err != nil {
				fail(w, http.StatusInternalServerError, err)
				return
			}
		}
		stats, err := b.Datapath.Stats()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		st.Stats = stats
		if b.Bypass != nil {
			st.Bypass = b.Bypass.Findings()
		}
		reply(w, st)
	})
	mux.HandleFunc("GET /api/v1/routes", func(w http.ResponseWriter, r *http.Request) {
		var filter netip.Prefix
		if s := r.URL.Query().Get("prefix"); s != "" {
			p, err := ParsePrefix(s)
			if err != nil {
				fail(w, http.StatusBadRequest, err)
				return
			}
			filter = p
		}
		routes := b.Sync.Routes(filter)
		if b.BGP != nil {
			if err := addRPKIStates(r.Context(), b.BGP, filter, routes); err != nil {
				fail(w, http.StatusInternalServerError, err)
				return
			}
		}
		reply(w, routes)
	})
	mux.HandleFunc("GET /api/v1/lookup", func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFlow(r.URL.Query(), ifindexByName(b.Interfaces))
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		e, err := explain(b, f)
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, e)
	})
	mux.HandleFunc("GET /api/v1/trace", serveTrace(b))
	mux.HandleFunc("GET /api/v1/nexthops", func(w http.ResponseWriter, r *http.Request) {
		reply(w, b.Sync.Groups())
	})
	mux.HandleFunc("GET /api/v1/neighbors", func(w http.ResponseWriter, r *http.Request) {
		ns, err := b.Datapath.Neighbors()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		out := make([]Neighbor, 0, len(ns))
		for _, n := range ns {
			out = append(out, Neighbor{Ifindex: n.Ifindex, Addr: n.Addr, MAC: n.MAC.String()})
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /api/v1/filters", func(w http.ResponseWriter, r *http.Request) {
		fs, err := b.Datapath.Filters()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		out := []Filter{}
		peer := func(a netip.Addr) string {
			if a.IsValid() {
				return a.String()
			}
			return ""
		}
		for _, f := range fs {
			out = append(out, Filter{Name: f.Name, Origin: string(f.Origin), Peer: peer(f.Peer), Match: f.Rule.String(),
				Action: ActionString(f.Action), InForce: true, Packets: f.Packets, Bytes: f.Bytes, Dropped: f.Dropped})
		}
		if b.Rejected != nil {
			for _, rj := range b.Rejected() {
				out = append(out, Filter{Name: rj.Name, Origin: string(filter.FromFlowspec), Peer: peer(rj.Peer), Reason: rj.Reason})
			}
		}
		reply(w, out)
	})
	mux.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Datapath.Stats()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, s)
	})
	return mux
}

// ParsePrefix accepts a prefix or a single address (as a host prefix).
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a prefix nor an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

type errorReply struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorReply{err.Error()})
}

// Get fetches path (with query) from the daemon at addr into out.
func Get(ctx context.Context, addr, path string, query url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is xdprouterd running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e errorReply
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("xdprouterd: %s", e.Error)
		}
		return fmt.Errorf("xdprouterd: %s", resp.Status)
	}
	return json.Unmarshal(body, out)
}

// addRPKIStates sets the origin validation state of the BGP routes of
// the global instance's table (none without [[rpki]]).
func addRPKIStates(ctx context.Context, sp *bgp.Speaker, filter netip.Prefix, routes []xsync.RouteInfo) error {
	table, states, err := sp.RPKIStates(ctx, filter)
	if err != nil || states == nil {
		if errors.Is(err, bgp.ErrNotRunning) {
			return nil
		}
		return err
	}
	for i := range routes {
		r := &routes[i]
		if r.Source == "bgp" && r.Table == table {
			r.RPKI = states[r.Prefix]
		}
	}
	return nil
}
