package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/xdprouter/xdprouter/bpf"
)

// DefaultTraceRate is the events per second /api/v1/trace sends when the
// query sets no rate.
const DefaultTraceRate = 100

// ParseTrace reads a trace query: from, to (prefixes or addresses), proto
// (as lookup's), family (4 or 6), sample (1 in N) and rate (events per
// second; 0: no limit; default DefaultTraceRate).
func ParseTrace(q url.Values) (bpf.TraceFilter, error) {
	f := bpf.TraceFilter{Rate: DefaultTraceRate}
	for key, dst := range map[string]*netip.Prefix{"from": &f.Src, "to": &f.Dst} {
		if s := q.Get(key); s != "" {
			pf, err := ParsePrefix(s)
			if err != nil {
				return f, fmt.Errorf("%s: %w", key, err)
			}
			*dst = pf
		}
	}
	if s := q.Get("proto"); s != "" {
		p, err := parseProto(s)
		if err != nil {
			return f, fmt.Errorf("proto: %w", err)
		}
		f.Proto = p
	}
	for _, p := range []struct {
		key string
		v   *uint32
	}{{"sample", &f.Sample}, {"rate", &f.Rate}} {
		if s := q.Get(p.key); s != "" {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return f, fmt.Errorf("%s: %q is not a count", p.key, s)
			}
			*p.v = uint32(n)
		}
	}
	if s := q.Get("family"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || (n != 4 && n != 6) {
			return f, fmt.Errorf("family: %q (want 4 or 6)", s)
		}
		f.Family = n
	}
	return f, nil
}

// TraceEvent is one line of /api/v1/trace: a traced decision with port
// names.
type TraceEvent struct {
	bpf.TraceEvent
	In  string `json:"in,omitempty"`
	Out string `json:"out,omitempty"`
}

// serveTrace streams sampled live decisions as JSON lines (chunked) until
// the client goes away; XDP traces while at least one client is
// connected.
func serveTrace(b Backend) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseTrace(r.URL.Query())
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		names := map[int]string{}
		for _, i := range b.Interfaces {
			names[i.Ifindex] = i.Name
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		if fl != nil {
			fl.Flush()
		}
		enc := json.NewEncoder(w)
		err = b.Datapath.Trace(r.Context(), f, func(e bpf.TraceEvent) {
			_ = enc.Encode(TraceEvent{TraceEvent: e, In: names[e.Ingress], Out: names[e.Egress]})
			if fl != nil {
				fl.Flush()
			}
		})
		if err != nil {
			_ = enc.Encode(errorReply{err.Error()})
		}
	}
}
