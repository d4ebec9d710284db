package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Tracing live decisions (xdprouterctl trace, top). While at least one
// Trace call runs, the program's trace_on is set and every verdict it
// counts goes through trace_emit (fwd.c), which applies the filter in
// trace_config, samples 1 in N matching packets, caps the events per
// second per CPU and writes them into the ring buffer trace_ring; one
// reader goroutine hands them to the tracers. When the last one returns,
// trace_on is cleared: the per-packet cost is then one load and a branch.
//
// One filter is in force in XDP: the tracer's own while it is alone; with
// several at once, XDP passes every packet (sampling 1 in the smallest N,
// the budget of the sum of their rates) and each tracer filters, samples
// and rate-limits its share in Go.

// TraceFilter selects the traced packets and how many.
type TraceFilter struct {
	Src, Dst netip.Prefix // invalid: any
	Proto    uint8        // 0: any
	Family   int          // 0: any, 4 or 6 (a prefix implies its family)
	Sample   uint32       // 1 in Sample matching packets (0 or 1: each)
	Rate     uint32       // events per second at most (0: no limit)
}

func (f TraceFilter) family() (int, error) {
	fam := f.Family
	for _, p := range []netip.Prefix{f.Src, f.Dst} {
		if !p.IsValid() {
			continue
		}
		pf := 6
		if p.Addr().Is4() {
			pf = 4
		}
		if fam != 0 && fam != pf {
			return 0, fmt.Errorf("trace: %v is not of family %d", p, fam)
		}
		fam = pf
	}
	if fam != 0 && fam != 4 && fam != 6 {
		return 0, fmt.Errorf("trace: family %d (want 4 or 6)", fam)
	}
	return fam, nil
}

// Match reports whether e passes f's selectors (not its sampling).
func (f TraceFilter) Match(e TraceEvent) bool {
	fam, _ := f.family()
	switch {
	case fam == 4 && !e.Dst.Is4(), fam == 6 && (!e.Dst.IsValid() || e.Dst.Is4()):
		return false
	case f.Proto != 0 && f.Proto != e.Proto:
		return false
	case f.Src.IsValid() && !f.Src.Contains(e.Src), f.Dst.IsValid() && !f.Dst.Contains(e.Dst):
		return false
	}
	return true
}

// TraceEvent is one traced verdict.
type TraceEvent struct {
	Time    time.Time
	Ingress int
	Egress  int `json:",omitempty"` // redirect target
	Src     netip.Addr
	Dst     netip.Addr
	Proto   uint8
	Sport   uint16 `json:",omitempty"`
	Dport   uint16 `json:",omitempty"`
	Tos     uint8  `json:",omitempty"`
	TTL     uint8  // as the frame left the program (redirect: decremented)
	Len     int    // frame bytes
	Action  string
	Reason  string `json:",omitempty"`
	// The frame's MACs when counted (redirect: the rewritten ones).
	SrcMAC, DstMAC net.HardwareAddr
}

func (f TraceFilter) config() (fwdTraceCfg, error) {
	fam, err := f.family()
	if err != nil {
		return fwdTraceCfg{}, err
	}
	c := fwdTraceCfg{Sample: f.Sample, Budget: f.Rate, Proto: f.Proto, Family: uint8(fam)}
	set := func(p netip.Prefix, addr, mask *[16]byte) {
		if !p.IsValid() {
			return
		}
		p = p.Masked()
		if p.Addr().Is4() {
			a := p.Addr().As4()
			copy(addr[:], a[:])
		} else {
			*addr = p.Addr().As16()
		}
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
	}
	set(f.Src, &c.Src, &c.SrcMask)
	set(f.Dst, &c.Dst, &c.DstMask)
	return c, nil
}

type traceSub struct {
	f      TraceFilter
	ch     chan TraceEvent
	seen   uint64
	window int64
	sent   uint32
}

// tracer is the Datapath's tracing state.
type tracer struct {
	mu     sync.Mutex
	subs   map[*traceSub]struct{}
	reader *ringbuf.Reader
	done   chan struct{}
	start  uint64 // ktime when tracing was last enabled: older events are stale
	lost   uint64 // events dropped in Go (a slow tracer)
}

// stop disables tracing and waits for the reader (Datapath.Close).
func (t *tracer) stop() {
	t.mu.Lock()
	r, done := t.reader, t.done
	t.reader, t.done = nil, nil
	t.mu.Unlock()
	if r != nil {
		r.Close()
		<-done
	}
}

// traceBuffer is how many events a tracer may be behind before events
// are dropped for it.
const traceBuffer = 1024

// Trace enables tracing and calls fn for each sampled decision matching
// f until ctx is done (and returns nil) or tracing fails. Events come
// from live traffic only: Explain's runs are never traced here.
func (d *Datapath) Trace(ctx context.Context, f TraceFilter, fn func(TraceEvent)) error {
	return d.trace(ctx, f, fn, nil)
}

// trace is Trace; started (if not nil) is closed once XDP traces.
func (d *Datapath) trace(ctx context.Context, f TraceFilter, fn func(TraceEvent), started chan struct{}) error {
	if _, err := f.config(); err != nil {
		return err
	}
	s := &traceSub{f: f, ch: make(chan TraceEvent, traceBuffer)}
	if err := d.traceJoin(s); err != nil {
		return err
	}
	defer d.traceLeave(s)
	if started != nil {
		close(started)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.ch:
			fn(e)
		}
	}
}

// configure writes the XDP config for the current tracers (t.mu held).
func (d *Datapath) traceConfigure() error {
	t := &d.tracer
	var f TraceFilter
	if len(t.subs) == 1 {
		for s := range t.subs {
			f = s.f
		}
	} else {
		for s := range t.subs {
			if f.Sample == 0 || s.f.Sample < f.Sample {
				f.Sample = max(s.f.Sample, 1)
			}
			if s.f.Rate == 0 {
				f.Rate = 0
				break
			}
			f.Rate += s.f.Rate
		}
	}
	c, err := f.config()
	if err != nil {
		return err
	}
	if err := d.objs.TraceConfig.Put(uint32(0), c); err != nil {
		return fmt.Errorf("trace: map trace_config: %w", err)
	}
	return nil
}

func (d *Datapath) traceJoin(s *traceSub) error {
	t := &d.tracer
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs == nil {
		t.subs = map[*traceSub]struct{}{}
	}
	t.subs[s] = struct{}{}
	if err := d.traceConfigure(); err != nil {
		delete(t.subs, s)
		return err
	}
	if t.reader != nil {
		return nil
	}
	// A fresh budget and sample count (the lost count stays).
	var per []fwdTraceState
	if err := d.objs.TraceStates.Lookup(uint32(0), &per); err != nil {
		delete(t.subs, s)
		return fmt.Errorf("trace: map trace_states: %w", err)
	}
	for i := range per {
		per[i] = fwdTraceState{Lost: per[i].Lost}
	}
	if err := d.objs.TraceStates.Put(uint32(0), per); err != nil {
		delete(t.subs, s)
		return fmt.Errorf("trace: map trace_states: %w", err)
	}
	r, err := ringbuf.NewReader(d.objs.TraceRing)
	if err != nil {
		delete(t.subs, s)
		return fmt.Errorf("trace: ring buffer: %w", err)
	}
	t.start = monotonicNow()
	if err := d.objs.TraceOn.Set(uint32(1)); err != nil {
		r.Close()
		delete(t.subs, s)
		return fmt.Errorf("trace: set trace_on: %w", err)
	}
	t.reader, t.done = r, make(chan struct{})
	go d.traceRead(r, t.done)
	return nil
}

func (d *Datapath) traceLeave(s *traceSub) {
	t := &d.tracer
	t.mu.Lock()
	delete(t.subs, s)
	if len(t.subs) > 0 {
		_ = d.traceConfigure()
		t.mu.Unlock()
		return
	}
	// The last one: XDP stops first, then the reader.
	_ = d.objs.TraceOn.Set(uint32(0))
	r, done := t.reader, t.done
	t.reader, t.done = nil, nil
	t.mu.Unlock()
	if r != nil {
		r.Close()
		<-done
	}
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func (d *Datapath) traceRead(r *ringbuf.Reader, done chan struct{}) {
	defer close(done)
	var (
		rec ringbuf.Record
		ev  fwdTraceEvent
	)
	size := binary.Size(ev)
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		if len(rec.RawSample) < size {
			continue
		}
		if _, err := binary.Decode(rec.RawSample, binary.NativeEndian, &ev); err != nil {
			continue
		}
		d.traceDispatch(&ev)
	}
}

func (d *Datapath) traceDispatch(ev *fwdTraceEvent) {
	t := &d.tracer
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Ts < t.start {
		return // left in the ring by an earlier session
	}
	e := traceEvent(ev)
	alone := len(t.subs) == 1
	for s := range t.subs {
		if !alone { // XDP did not filter for s
			if !s.f.Match(e) {
				continue
			}
			s.seen++
			if s.f.Sample > 1 && s.seen%uint64(s.f.Sample) != 0 {
				continue
			}
		}
		if s.f.Rate != 0 {
			if w := e.Time.Unix(); w != s.window {
				s.window, s.sent = w, 0
			}
			if s.sent >= s.f.Rate {
				continue
			}
			s.sent++
		}
		select {
		case s.ch <- e:
		default:
			t.lost++
		}
	}
}

// traceEvent converts an event of the ring.
func traceEvent(ev *fwdTraceEvent) TraceEvent {
	e := TraceEvent{
		Time:    time.Now().Add(-time.Duration(monotonicNow() - ev.Ts)),
		Ingress: int(ev.Ingress), Egress: int(ev.Egress), Proto: ev.Proto,
		Sport: ev.Sport, Dport: ev.Dport, Tos: ev.Tos, TTL: ev.Ttl, Len: int(ev.Len),
		SrcMAC: append(net.HardwareAddr(nil), ev.Smac[:]...),
		DstMAC: append(net.HardwareAddr(nil), ev.Dmac[:]...),
	}
	if monotonicNow() < ev.Ts {
		e.Time = time.Now()
	}
	switch ev.V6 {
	case 0:
		e.Src = netip.AddrFrom4([4]byte(ev.Src[:4]))
		e.Dst = netip.AddrFrom4([4]byte(ev.Dst[:4]))
	case 1:
		e.Src, e.Dst = netip.AddrFrom16(ev.Src), netip.AddrFrom16(ev.Dst)
	}
	if int(ev.Stat) < len(statNames) {
		e.Action, e.Reason = statNames[ev.Stat].action, statNames[ev.Stat].reason
	} else {
		e.Action = fmt.Sprintf("stat %d", ev.Stat)
	}
	return e
}

// TraceLost returns the events lost so far: those the ring had no room
// for (per CPU, summed) and those a slow tracer could not take.
func (d *Datapath) TraceLost() (uint64, error) {
	var per []fwdTraceState
	if err := d.objs.TraceStates.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("map trace_states: %w", err)
	}
	d.tracer.mu.Lock()
	n := d.tracer.lost
	d.tracer.mu.Unlock()
	for _, s := range per {
		n += s.Lost
	}
	return n, nil
}
