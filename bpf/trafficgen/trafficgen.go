package trafficgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Mode selects how Generator picks destinations.
type Mode uint32

const (
	// Fixed sends one flow to Config.Dst.
	Fixed Mode = 0 // GEN_FIXED
	// Random sends to a random host of one of Prefix(0) ... Prefix(Routes-1),
	// with a random UDP source port.
	Random Mode = 1 // GEN_RANDOM
)

func (m Mode) String() string {
	switch m {
	case Fixed:
		return "fixed"
	case Random:
		return "random"
	}
	return fmt.Sprintf("Mode(%d)", uint32(m))
}

// Layout of the generated frames; equal to trafficgen.h.
const (
	// FrameLen is the length of a generated frame: the minimum Ethernet
	// frame (64 bytes on the wire with the FCS), UDP over IPv4.
	FrameLen = 60
	// MaxRoutes is the number of distinct /24 prefixes Prefix can return.
	MaxRoutes = prefixMask + 1

	hdrLen      = 42
	hdrWords    = 6
	ipCheckOff  = 24
	ipDaddrOff  = 30
	prefixBase  = 0x40000000
	prefixMask  = 0xfffff
	prefixStep  = 0x9e3b5
	defaultTTL  = 64
	udpSrcPort  = 1024
	udpDstPort  = 9 // discard
	ethTypeIPv4 = 0x0800
)

// Prefix returns the i-th (0 <= i < MaxRoutes) /24 destination prefix of
// Random mode. The prefixes are spread over 64.0.0.0/4 (not contiguous, so
// route lookups see a realistic, sparse table), the same formula as in
// trafficgen.c.
func Prefix(i int) netip.Prefix {
	slot := (uint32(i) * prefixStep) & prefixMask
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], prefixBase|slot<<8)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// Config describes the generated frames.
type Config struct {
	// SrcMAC is the sending port's address, DstMAC the next hop's (the
	// router port the sending port is connected to).
	SrcMAC, DstMAC net.HardwareAddr
	// Src is the IPv4 source address; Dst the destination in Fixed mode.
	Src, Dst netip.Addr
	Mode     Mode
	// Routes is the number of prefixes Random mode draws destinations from
	// (1 ... MaxRoutes).
	Routes int
	// SrcPrefix, if valid (IPv4), makes a flood of spoofed sources: each
	// frame's source is a random address of SrcPrefix and its UDP source
	// port random, except every LegitEvery-th frame (0: none), which has
	// Src and the fixed port: a legitimate flow at 1/LegitEvery of the
	// rate, mixed into the same frames.
	SrcPrefix  netip.Prefix
	LegitEvery int
}

func (c Config) validate() error {
	var errs []error
	if len(c.SrcMAC) != 6 || len(c.DstMAC) != 6 {
		errs = append(errs, errors.New("trafficgen: MAC addresses must have 6 bytes"))
	}
	if !c.Src.Is4() {
		errs = append(errs, fmt.Errorf("trafficgen: source %v is not IPv4", c.Src))
	}
	switch c.Mode {
	case Fixed:
		if !c.Dst.Is4() {
			errs = append(errs, fmt.Errorf("trafficgen: destination %v is not IPv4", c.Dst))
		}
	case Random:
		if c.Routes < 1 || c.Routes > MaxRoutes {
			errs = append(errs, fmt.Errorf("trafficgen: routes %d out of 1..%d", c.Routes, MaxRoutes))
		}
	default:
		errs = append(errs, fmt.Errorf("trafficgen: unknown %v", c.Mode))
	}
	if c.SrcPrefix.IsValid() && !c.SrcPrefix.Addr().Is4() {
		errs = append(errs, fmt.Errorf("trafficgen: source prefix %v is not IPv4", c.SrcPrefix))
	}
	if c.LegitEvery < 0 || c.LegitEvery > 0 && !c.SrcPrefix.IsValid() {
		errs = append(errs, fmt.Errorf("trafficgen: legit-every %d needs a source prefix and must be >= 0", c.LegitEvery))
	}
	return errors.Join(errs...)
}

// Frame returns the frame Generator sends in Fixed mode (in Random mode the
// destination address, IPv4 checksum and UDP source port vary; with
// SrcPrefix, the legitimate frames are these and the others have another
// source address, checksum and source port): Ethernet, IPv4 (TTL 64, no
// options), UDP with a zero checksum and a zero payload.
func (c Config) Frame() []byte {
	dst := netip.IPv4Unspecified()
	if c.Mode == Fixed {
		dst = c.Dst
	}
	return frame(c, c.Src, dst)
}

// template is the generator's header: Frame with the varying addresses
// zero (the program adds them to the checksum).
func (c Config) template() []byte {
	src, dst := c.Src, netip.IPv4Unspecified()
	if c.SrcPrefix.IsValid() {
		src = netip.IPv4Unspecified()
	}
	if c.Mode == Fixed {
		dst = c.Dst
	}
	return frame(c, src, dst)
}

func frame(c Config, src, dst netip.Addr) []byte {
	f := make([]byte, FrameLen)
	copy(f[0:6], c.DstMAC)
	copy(f[6:12], c.SrcMAC)
	binary.BigEndian.PutUint16(f[12:], ethTypeIPv4)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], FrameLen-14)
	ip[8] = defaultTTL
	ip[9] = unix.IPPROTO_UDP
	sa, d := src.As4(), dst.As4()
	copy(ip[12:16], sa[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], udpSrcPort)
	binary.BigEndian.PutUint16(udp[2:], udpDstPort)
	binary.BigEndian.PutUint16(udp[4:], FrameLen-34)
	return f
}

// ipChecksum returns the checksum of an IPv4 header whose checksum field
// is zero.
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

// Generator sends frames with an XDP program run in BPF_PROG_TEST_RUN
// live-frames mode. Close releases it.
type Generator struct {
	prog  *ebpf.Program
	frame []byte
}

// NewGenerator loads the generator program for c.
func NewGenerator(c Config) (*Generator, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	spec, err := loadTrafficgen()
	if err != nil {
		return nil, err
	}
	f := c.template()
	var tmpl [hdrWords * 8]byte
	copy(tmpl[:], f[:hdrLen])
	routes := uint32(c.Routes)
	if c.Mode == Fixed {
		routes = 1
	}
	vars := map[string]any{trafficgenVarTmpl: tmpl, trafficgenVarMode: uint32(c.Mode), trafficgenVarN_routes: routes}
	if p := c.SrcPrefix.Masked(); p.IsValid() {
		vars[trafficgenVarSpoof] = uint32(1)
		vars[trafficgenVarSrcBase] = p.Addr().As4() // network byte order, as in the header
		vars[trafficgenVarSrcHostMask] = uint32(1<<(32-p.Bits()) - 1)
		vars[trafficgenVarLegitEvery] = uint32(c.LegitEvery)
		vars[trafficgenVarLegitSaddr] = c.Src.As4()
	}
	for name, v := range vars {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("trafficgen: set %s: %w", name, err)
		}
	}
	var objs struct {
		Generate *ebpf.Program `ebpf:"generate"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("trafficgen: load generator: %w", err)
	}
	return &Generator{prog: objs.Generate, frame: f}, nil
}

// xdpMD is struct xdp_md, the context of an XDP program test run.
type xdpMD struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// Send transmits n frames out of the port ifindex (XDP_TX: to the port's
// veth peer or the wire). The kernel resolves ifindex in the network
// namespace of the calling thread: call it on a thread locked into the
// sending namespace. It returns once the kernel has handed all n frames to
// the port; frames the receiver cannot take are dropped there.
func (g *Generator) Send(ifindex int, n uint32) error {
	_, err := g.prog.Run(&ebpf.RunOptions{
		Data:    g.frame,
		Repeat:  n,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context: xdpMD{DataEnd: uint32(len(g.frame)), IngressIfindex: uint32(ifindex)},
	})
	if err != nil {
		return fmt.Errorf("trafficgen: send %d frames on ifindex %d: %w", n, ifindex, err)
	}
	return nil
}

// Program returns the generator program (for tests: run it without live
// frames to see what it writes).
func (g *Generator) Program() *ebpf.Program { return g.prog }

// Close releases the program.
func (g *Generator) Close() error { return g.prog.Close() }

// Sink counts and drops every IPv4 frame arriving on a port and passes
// everything else (ARP, IPv6) to the kernel of the port's namespace, which
// answers neighbor resolution like a real host: a router in front of it
// keeps a valid neighbor entry without static (permanent) entries. Close
// detaches it.
type Sink struct {
	prog     *ebpf.Program
	received *ebpf.Map
	link     link.Link
}

// NewSink loads the sink program without attaching it.
func NewSink() (*Sink, error) {
	var objs struct {
		Sink     *ebpf.Program `ebpf:"sink"`
		Received *ebpf.Map     `ebpf:"received"`
	}
	if err := loadTrafficgenObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("trafficgen: load sink: %w", err)
	}
	return &Sink{prog: objs.Sink, received: objs.Received}, nil
}

// Attach attaches the sink to ifindex in native (driver) mode, which on a
// veth also gives the port the NAPI context that frames redirected into
// its peer need. Call it on a thread locked into the port's namespace.
func (s *Sink) Attach(ifindex int) error {
	if s.link != nil {
		return errors.New("trafficgen: sink already attached")
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: s.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("trafficgen: attach sink to ifindex %d: %w", ifindex, err)
	}
	s.link = l
	return nil
}

// Received returns the number of IPv4 frames the sink has dropped so far.
func (s *Sink) Received() (uint64, error) {
	var perCPU []uint64
	if err := s.received.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("trafficgen: read sink counter: %w", err)
	}
	var n uint64
	for _, c := range perCPU {
		n += c
	}
	return n, nil
}

// Program returns the sink program (for tests).
func (s *Sink) Program() *ebpf.Program { return s.prog }

// Close detaches the sink and releases its objects.
func (s *Sink) Close() error {
	var errs []error
	if s.link != nil {
		errs = append(errs, s.link.Close())
		s.link = nil
	}
	errs = append(errs, s.prog.Close(), s.received.Close())
	return errors.Join(errs...)
}
