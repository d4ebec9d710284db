package api

import (
	"fmt"
	"net/netip"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/fib"
)

// Explain is the answer of /api/v1/lookup: what the real XDP program did
// with a synthetic frame of the flow (Program), the Go model's details
// (the embedded Decision: rule, table, route, group, every ECMP member),
// the kernel's own answer (`ip route get`), and what disagrees.
type Explain struct {
	bpf.Decision
	Flow bpf.Flow `json:"flow"`
	// Assumed lists the defaults filled in for the frame (source,
	// protocol).
	Assumed      []string         `json:"assumed,omitempty"`
	Program      *bpf.ProgramRun  `json:"program,omitempty"`
	ProgramError string           `json:"program_error,omitempty"`
	Kernel       *fib.KernelRoute `json:"kernel,omitempty"`
	KernelError  string           `json:"kernel_error,omitempty"`
	// Flags are the disagreements: the model against the program, the
	// kernel against XDP (XDP passing to the kernel is none).
	Flags []string `json:"flags,omitempty"`
}

// Default source addresses of an explained frame without --from: not
// martian, routed nowhere in particular (RFC 2544's benchmark range and
// RFC 6666's discard prefix).
var (
	DefaultSource4 = netip.MustParseAddr("198.18.0.1")
	DefaultSource6 = netip.MustParseAddr("100::1")
)

// explain answers a lookup; the ingress port is resolved, and the kernel
// asked, in the calling thread's namespace: the daemon's.
func explain(b Backend, f bpf.Flow) (Explain, error) {
	var e Explain
	if !f.Src.IsValid() {
		f.Src = DefaultSource4
		if !f.Dst.Is4() {
			f.Src = DefaultSource6
		}
		e.Assumed = append(e.Assumed, "from "+f.Src.String())
	}
	if f.Proto == 0 {
		f.Proto = 17
		e.Assumed = append(e.Assumed, "proto udp")
	}
	e.Flow = f
	dec, err := b.Datapath.LookupFlow(f)
	if err != nil {
		return e, err
	}
	e.Decision = dec
	if r, err := b.Datapath.Explain(f); err != nil {
		e.ProgramError = err.Error()
	} else {
		e.Program = &r
		if why := dec.Disagreement(r); why != "" {
			e.Flags = append(e.Flags, why)
		}
	}
	get := b.RouteGet
	if get == nil {
		get = fib.RouteGet
	}
	k, err := get(fib.RouteQuery{Src: f.Src, Dst: f.Dst, Iif: f.Iif, Proto: f.Proto, Sport: f.Sport, Dport: f.Dport, Tos: f.Tos})
	if err != nil {
		e.KernelError = err.Error()
	} else {
		e.Kernel = &k
		if e.Program != nil {
			if why := kernelDisagrees(b.Datapath, dec, *e.Program, k); why != "" {
				e.Flags = append(e.Flags, why)
			}
		}
	}
	return e, nil
}

// kernelDisagrees compares XDP's outcome with the kernel's route: a
// redirect must go through one of the next hops of the kernel's route,
// a blackhole drop must be one in the kernel too. Passing to the kernel
// never disagrees; drops by filters, uRPF or martian checks are XDP's own
// policy (the kernel's route lookup does not see them).
func kernelDisagrees(d *bpf.Datapath, dec bpf.Decision, r bpf.ProgramRun, k fib.KernelRoute) string {
	switch {
	case r.Action == bpf.ActionRedirect:
		if k.Error != "" {
			return fmt.Sprintf("XDP forwards out of ifindex %d, the kernel would not: %s", r.Egress, k.Error)
		}
		if k.Type != "unicast" {
			return fmt.Sprintf("XDP forwards out of ifindex %d, the kernel's route is %s", r.Egress, k.Type)
		}
		gw, known := netip.Addr{}, false
		for _, c := range dec.Candidates {
			if c.Ifindex == r.Egress && c.DstMAC.String() == r.DstMAC.String() {
				if nh, ok := d.NextHop(c.NextHop); ok {
					gw, known = nh.Gateway, true
				}
				break
			}
		}
		for _, h := range k.Hops {
			if h.Ifindex == r.Egress && (!known || h.Gateway == gw) {
				return ""
			}
		}
		via := fmt.Sprintf("ifindex %d", r.Egress)
		if known && gw.IsValid() {
			via = fmt.Sprintf("%v on ifindex %d", gw, r.Egress)
		}
		return fmt.Sprintf("XDP forwards via %s, a next hop the kernel's route (%s) does not use", via, hopsString(k.Hops))
	case r.Action == bpf.ActionDrop && r.Reason == bpf.ReasonBlackhole && k.Error == "" && k.Type == "unicast":
		return "XDP drops (blackhole route), the kernel would forward"
	}
	return ""
}

func hopsString(hs []fib.KernelHop) string {
	s := ""
	for i, h := range hs {
		if i > 0 {
			s += ", "
		}
		if h.Gateway.IsValid() {
			s += fmt.Sprintf("via %v ", h.Gateway)
		}
		s += fmt.Sprintf("dev %d", h.Ifindex)
	}
	if s == "" {
		return "none"
	}
	return s
}
