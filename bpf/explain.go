package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/xdprouter/xdprouter/route"
)

// Explaining a packet (xdprouterctl lookup): the real XDP program runs on
// a synthetic frame with BPF_PROG_TEST_RUN, its counters kept apart.
//
// The program that runs is a second instance of the same program spec
// (the explain instance), loaded once on first use. It shares every state
// map of the live Datapath through CollectionOptions.MapReplacements:
// routes, the compiled structure, groups, next hops, neighbors, ports,
// tx_ports, filters, policy rules, and the global-variable sections .data
// and .bss (lookup_compiled, rules_compiled, rules_on), so every write of
// the control plane, whichever way it is done (map updates, memory
// mappings, Variable.Set), is seen by both without copying. It has maps
// of its own for what a packet writes: the counters (stats,
// filter_counters), the rate-limit token buckets (filter_buckets, so an
// explain never spends the live budget and the live traffic never makes
// an explain drop), the per-CPU scratch, and the tracing maps with its own
// .data.trace section: its trace_on is always 1 and its ring buffer
// (which no live packet writes) tells which port the frame was redirected
// to. The live stats, filter counters and buckets do not move.
//
// Runs are serialized: the reason is the explain instance's stat that
// moved during the run.

// ownMaps are the maps the explain instance does not share (see above).
// A new map is shared unless it is listed here: a map packets write
// belongs here.
var ownMaps = map[string]bool{
	fwdMapStats: true, fwdMapFilterCounters: true, fwdMapFilterBuckets: true,
	fwdMapRuleScratch: true, fwdMapTraceRing: true, fwdMapTraceConfig: true, fwdMapTraceStates: true,
	".rodata": true, ".data.trace": true,
}

// dataSections are the global-variable maps of the live program, for the
// explain instance to share.
type dataSections struct {
	Data *ebpf.Map `ebpf:".data"`
	Bss  *ebpf.Map `ebpf:".bss"`
}

func (s *dataSections) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{s.Data, s.Bss} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// liveMaps lists the live program's maps by name.
func (d *Datapath) liveMaps() map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{".data": d.objs.Data, ".bss": d.objs.Bss}
	v := reflect.ValueOf(&d.objs.fwdMaps).Elem()
	for i := range v.NumField() {
		if m, ok := v.Field(i).Interface().(*ebpf.Map); ok && m != nil {
			out[v.Type().Field(i).Tag.Get("ebpf")] = m
		}
	}
	return out
}

type explainObjs struct {
	Prog    *ebpf.Program  `ebpf:"xdp_fwd"`
	Stats   *ebpf.Map      `ebpf:"stats"`
	Ring    *ebpf.Map      `ebpf:"trace_ring"`
	Config  *ebpf.Map      `ebpf:"trace_config"`
	TraceOn *ebpf.Variable `ebpf:"trace_on"`
}

// explainer is the explain instance.
type explainer struct {
	mu   sync.Mutex
	objs explainObjs
	ring *ringbuf.Reader
	last []uint64 // packets per stat, summed over CPUs, after the last run
}

func (e *explainer) close() {
	if e == nil {
		return
	}
	if e.ring != nil {
		e.ring.Close()
	}
	for _, c := range []interface{ Close() error }{e.objs.Prog, e.objs.Stats, e.objs.Ring, e.objs.Config} {
		if c != nil && !reflect.ValueOf(c).IsNil() {
			c.Close()
		}
	}
}

// explainRingSize is the explain instance's ring buffer (one event per run).
const explainRingSize = 1 << 16

func (d *Datapath) newExplainer() (*explainer, error) {
	spec, err := loadFwd()
	if err != nil {
		return nil, err
	}
	repl := map[string]*ebpf.Map{}
	for name, m := range d.liveMaps() {
		ms, ok := spec.Maps[name]
		if !ok || ownMaps[name] {
			continue
		}
		ms.MaxEntries, ms.Flags = m.MaxEntries(), m.Flags()
		repl[name] = m
	}
	for name := range spec.Maps {
		if !ownMaps[name] && repl[name] == nil {
			return nil, fmt.Errorf("explain: map %s neither shared nor the explain instance's own", name)
		}
	}
	spec.Maps[fwdMapTraceRing].MaxEntries = explainRingSize
	e := &explainer{}
	if err := spec.LoadAndAssign(&e.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		e.close()
		return nil, fmt.Errorf("explain: load the program: %w", err)
	}
	fail := func(err error) (*explainer, error) { e.close(); return nil, fmt.Errorf("explain: %w", err) }
	// Every verdict into the ring: sample 1, no budget, no filter.
	if err := e.objs.Config.Put(uint32(0), fwdTraceCfg{Sample: 1}); err != nil {
		return fail(err)
	}
	if err := e.objs.TraceOn.Set(uint32(1)); err != nil {
		return fail(err)
	}
	if e.ring, err = ringbuf.NewReader(e.objs.Ring); err != nil {
		return fail(err)
	}
	if e.last, err = statPackets(e.objs.Stats); err != nil {
		return fail(err)
	}
	return e, nil
}

func statPackets(m *ebpf.Map) ([]uint64, error) {
	out := make([]uint64, len(statNames))
	var perCPU []fwdCounter
	for i := range statNames {
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		for _, c := range perCPU {
			out[i] += c.Packets
		}
	}
	return out, nil
}

func (d *Datapath) explainInstance() (*explainer, error) {
	d.exMu.Lock()
	defer d.exMu.Unlock()
	if d.ex == nil {
		e, err := d.newExplainer()
		if err != nil {
			return nil, err
		}
		d.ex = e
	}
	return d.ex, nil
}

// ProgramRun is what the XDP program did with a frame (Explain).
type ProgramRun struct {
	Action string // ActionRedirect, ActionDrop, ActionPass or ActionAborted
	Reason string // the stat counted (see Stats); empty for redirect
	// Ingress is the port the frame arrived on (0: none, the program
	// then skips the port checks).
	Ingress int
	// The redirect target and the frame's MACs and TTL (hop limit) as
	// the program left them (redirect only).
	Egress         int              `json:",omitempty"`
	SrcMAC, DstMAC net.HardwareAddr `json:",omitempty"`
	TTL            uint8            `json:",omitempty"`
	// VLAN is the 802.1Q VLAN id the frame left with (0: untagged).
	VLAN uint16 `json:",omitempty"`
	// Frame is the synthetic frame's length in bytes.
	Frame int
}

// Explain runs the XDP program on a synthetic frame of flow f (see
// FlowFrame) arriving on f.Iif, in a second instance of the program that
// shares the live state and keeps its counters and rate-limit buckets
// apart (see explain.go): the live counters do not move. The ingress
// ifindex is resolved in the network namespace of the calling OS thread.
// A VLAN port's frame is tagged and arrives on its parent.
func (d *Datapath) Explain(f Flow) (ProgramRun, error) {
	frame, err := d.FlowFrame(f)
	if err != nil {
		return ProgramRun{}, err
	}
	in := f.Iif
	d.egressMu.Lock()
	if v, ok := d.vlans[f.Iif]; ok {
		in = v.parent
	}
	d.egressMu.Unlock()
	r, _, err := d.explainFrame(frame, in)
	r.Ingress = f.Iif
	return r, err
}

// DefaultTTL is the TTL of synthetic frames whose flow sets none.
const DefaultTTL = 64

// FlowFrame builds the Ethernet frame Explain runs for f: addressed to
// the ingress port's MAC, TTL f.TTL (DefaultTTL if 0), the protocol's
// minimal header (TCP SYN, UDP, ICMP echo request, SCTP common header, 8
// zero bytes for others) with f's ports, padded to f.Size, tagged if
// f.Iif is a VLAN port. An invalid
// f.Src reads as the unspecified address; f.Proto 0 is protocol 0.
func (d *Datapath) FlowFrame(f Flow) ([]byte, error) {
	if !f.Dst.IsValid() {
		return nil, errors.New("frame: invalid destination")
	}
	dst := f.Dst.WithZone("")
	v6 := !dst.Is4()
	src := f.Src.WithZone("")
	if !src.IsValid() || src.Is4() == v6 {
		src = zeroAddr(dst.BitLen())
	}
	ttl := f.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	var l4 []byte
	switch f.Proto {
	case 6: // TCP
		l4 = make([]byte, 20)
		l4[12], l4[13] = 5<<4, 0x02 // SYN
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case 17, 136: // UDP, UDP-Lite
		l4 = make([]byte, 8)
	case 1: // ICMP echo request
		l4 = []byte{8, 0, 0, 0, 0, 0, 0, 0}
	case 58: // ICMPv6 echo request
		l4 = []byte{128, 0, 0, 0, 0, 0, 0, 0}
	case 132: // SCTP
		l4 = make([]byte, 12)
	default:
		l4 = make([]byte, 8)
	}
	if has := f.Proto == 6 || f.Proto == 17 || f.Proto == 132 || f.Proto == 136 || f.Proto == 33; has {
		binary.BigEndian.PutUint16(l4[0:], f.Sport)
		binary.BigEndian.PutUint16(l4[2:], f.Dport)
	}
	hlen := 20
	if v6 {
		hlen = 40
	}
	if pad := f.Size - hlen - len(l4); pad > 0 {
		if f.Size > 65535+40 {
			return nil, fmt.Errorf("frame: size %d beyond an IP packet's", f.Size)
		}
		l4 = append(l4, make([]byte, pad)...)
	}
	if f.Proto == 17 {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	b := make([]byte, 0, 14+hlen+len(l4))
	dmac := explainDstMAC
	d.egressMu.Lock()
	if p, ok := d.ports[f.Iif]; ok {
		dmac = p.mac
	}
	vlan, tagged := d.vlans[f.Iif]
	d.egressMu.Unlock()
	b = append(b, dmac[:]...)
	b = append(b, explainSrcMAC[:]...)
	if tagged {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, vlan.vid)
	}
	if v6 {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60 | f.Tos>>4
		ip[1] = f.Tos << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = f.Proto, ttl
		s, t := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], t[:])
		b = append(b, ip...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := make([]byte, 20)
		ip[0], ip[1] = 0x45, f.Tos
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = ttl, f.Proto
		s, t := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], t[:])
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		b = append(b, ip...)
	}
	return append(b, l4...), nil
}

var (
	explainSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	explainDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// xdpMD is struct xdp_md, the context of BPF_PROG_TEST_RUN for XDP.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// XDP return codes.
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTx       = 3
	xdpRedirect = 4
)

// explainFrame runs the explain instance on frame arriving on ingress (0:
// none) and returns the frame as the program left it too.
func (d *Datapath) explainFrame(frame []byte, ingress int) (ProgramRun, []byte, error) {
	e, err := d.explainInstance()
	if err != nil {
		return ProgramRun{}, nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	in := append([]byte(nil), frame...)
	opts := ebpf.RunOptions{Data: in, DataOut: make([]byte, len(frame)+256)}
	if ingress != 0 {
		opts.Context = xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ingress)}
	}
	ret, err := e.objs.Prog.Run(&opts)
	if err != nil {
		return ProgramRun{}, nil, fmt.Errorf("explain: BPF_PROG_TEST_RUN: %w", err)
	}
	r := ProgramRun{Ingress: ingress, Frame: len(frame)}
	now, err := statPackets(e.objs.Stats)
	if err != nil {
		return ProgramRun{}, nil, fmt.Errorf("explain: %w", err)
	}
	moved := -1
	for i := range now {
		if now[i] != e.last[i] {
			moved = i
		}
	}
	e.last = now
	if moved >= 0 {
		r.Action, r.Reason = statNames[moved].action, statNames[moved].reason
	}
	switch ret {
	case xdpRedirect:
		if r.Action != ActionRedirect {
			return r, nil, fmt.Errorf("explain: XDP_REDIRECT counted as %s/%s", r.Action, r.Reason)
		}
	case xdpPass, xdpDrop:
		want := map[uint32]string{xdpPass: ActionPass, xdpDrop: ActionDrop}[ret]
		if r.Action != want {
			return r, nil, fmt.Errorf("explain: verdict %s counted as %s/%s", want, r.Action, r.Reason)
		}
	default:
		r.Action, r.Reason = ActionAborted, fmt.Sprintf("verdict %d", ret)
	}
	// The run's event: the redirect target.
	var ev fwdTraceEvent
	e.ring.SetDeadline(time.Now())
	var rec ringbuf.Record
	for {
		if err := e.ring.ReadInto(&rec); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return r, nil, fmt.Errorf("explain: read the event: %w", err)
			}
			break
		}
		if len(rec.RawSample) >= binary.Size(ev) {
			_, _ = binary.Decode(rec.RawSample, binary.NativeEndian, &ev)
		}
	}
	if ret == xdpRedirect {
		out := opts.DataOut
		r.Egress = int(ev.Egress)
		r.DstMAC = append(net.HardwareAddr(nil), out[0:6]...)
		r.SrcMAC = append(net.HardwareAddr(nil), out[6:12]...)
		l3 := 14
		if binary.BigEndian.Uint16(out[12:]) == 0x8100 {
			r.VLAN = binary.BigEndian.Uint16(out[14:]) & 0xfff
			l3 = 18
		}
		if len(out) >= l3+40 && binary.BigEndian.Uint16(out[l3-2:]) == 0x86dd {
			r.TTL = out[l3+7]
		} else if len(out) >= l3+20 {
			r.TTL = out[l3+8]
		}
	}
	return r, opts.DataOut, nil
}

// Disagreement compares the model's decision (LookupFlow) with what the
// program did (Explain) and describes how they differ ("" if they agree).
// Under ECMP the model lists every member: the program's outcome must be
// one of theirs.
func (dec Decision) Disagreement(r ProgramRun) string {
	if dec.Action == r.Action && dec.Reason == r.Reason && r.Action != ActionRedirect {
		return ""
	}
	for _, c := range dec.Candidates {
		if c.Action != r.Action || c.Reason != r.Reason {
			continue
		}
		if r.Action != ActionRedirect ||
			c.Ifindex == r.Egress && c.DstMAC.String() == r.DstMAC.String() && c.SrcMAC.String() == r.SrcMAC.String() {
			return ""
		}
	}
	model := dec.Action
	if dec.Reason != "" {
		model += "/" + dec.Reason
	}
	prog := r.Action
	if r.Reason != "" {
		prog += "/" + r.Reason
	}
	if r.Action == ActionRedirect {
		prog += fmt.Sprintf(" via ifindex %d to %s", r.Egress, r.DstMAC)
	}
	return fmt.Sprintf("the model (lookup's Go re-implementation) says %s, the program %s", model, prog)
}

// NextHop returns next hop id as last set (SetNextHop), for explaining a
// redirect: its gateway and port.
func (d *Datapath) NextHop(id uint32) (route.Egress, bool) {
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	nh, ok := d.nhs[id]
	return nh, ok
}
