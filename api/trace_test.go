package api

import (
	"net/netip"
	"net/url"
	"testing"

	"github.com/xdprouter/xdprouter/bpf"
)

func TestParseTrace(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want bpf.TraceFilter
		err  bool
	}{
		{q: "", want: bpf.TraceFilter{Rate: DefaultTraceRate}},
		{q: "from=10.0.0.0/8&to=192.0.2.1&proto=udp&sample=10&rate=0", want: bpf.TraceFilter{
			Src: netip.MustParsePrefix("10.0.0.0/8"), Dst: netip.MustParsePrefix("192.0.2.1/32"), Proto: 17, Sample: 10}},
		{q: "family=6", want: bpf.TraceFilter{Family: 6, Rate: DefaultTraceRate}},
		{q: "family=5", err: true},
		{q: "to=nonsense", err: true},
		{q: "rate=-1", err: true},
	} {
		v, _ := url.ParseQuery(tc.q)
		got, err := ParseTrace(v)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("%q: %+v, %v; want %+v (error %v)", tc.q, got, err, tc.want, tc.err)
		}
	}
}
