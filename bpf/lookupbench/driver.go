package lookupbench

import (
	"fmt"
	"math/bits"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Driver is the loaded front-end program with its destination list.
type Driver struct {
	objs driverObjects
}

// New loads a driver over dsts (all IPv4 or all IPv6; a power of two of
// them, at least one), which it walks in order and over again.
func New(dsts []netip.Addr) (*Driver, error) {
	n := len(dsts)
	if n == 0 || bits.OnesCount(uint(n)) != 1 || n > 1<<30 {
		return nil, fmt.Errorf("lookupbench: %d destinations, want a power of two", n)
	}
	spec, err := loadDriver()
	if err != nil {
		return nil, err
	}
	spec.Maps[driverMapDsts].MaxEntries = uint32(n)
	if err := spec.Variables[driverVarDstMask].Set(uint32(n - 1)); err != nil {
		return nil, err
	}
	var d Driver
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		return nil, fmt.Errorf("lookupbench: load: %w", err)
	}
	keys := make([]uint32, n)
	vals := make([][16]byte, n)
	for i, a := range dsts {
		if a.Is4() != dsts[0].Is4() {
			d.Close()
			return nil, fmt.Errorf("lookupbench: destinations mix IPv4 and IPv6 (%v, %v)", dsts[0], a)
		}
		keys[i] = uint32(i)
		if a.Is4() {
			b := a.As4()
			copy(vals[i][:], b[:])
		} else {
			vals[i] = a.As16()
		}
	}
	if _, err := d.objs.Dsts.BatchUpdate(keys, vals, nil); err != nil {
		d.Close()
		return nil, fmt.Errorf("lookupbench: fill destinations: %w", err)
	}
	return &d, nil
}

// Pass returns a target that returns XDP_PASS at once: driving it measures
// the driver's own cost per packet.
func (d *Driver) Pass() *ebpf.Program { return d.objs.Pass }

// Run runs the driver with target behind it repeat times on frame (an
// Ethernet frame of the destinations' family), as received on ingress (an
// ifindex in the calling thread's network namespace; 0: loopback). It
// returns the last verdict and the kernel-measured time per packet. The
// caller locks its thread into the namespace bpf_fib_lookup should see.
func (d *Driver) Run(target *ebpf.Program, frame []byte, ingress int, repeat uint32) (uint32, time.Duration, error) {
	if err := d.objs.Target.Put(uint32(0), target); err != nil {
		return 0, 0, fmt.Errorf("lookupbench: set target: %w", err)
	}
	if len(frame) < 14 {
		return 0, 0, fmt.Errorf("lookupbench: frame of %d bytes", len(frame))
	}
	if err := d.objs.EthTmpl.Set([14]byte(frame[:14])); err != nil {
		return 0, 0, fmt.Errorf("lookupbench: set Ethernet header: %w", err)
	}
	ret, ns, err := testRun(d.objs.Drive, frame, uint32(ingress), repeat)
	return ret, time.Duration(ns), err
}

// Close releases the program and its maps.
func (d *Driver) Close() error { return d.objs.Close() }

// xdpMD is struct xdp_md.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// testRunAttr is the BPF_PROG_TEST_RUN member of union bpf_attr.
type testRunAttr struct {
	ProgFD, Retval, DataSizeIn, DataSizeOut uint32
	DataIn, DataOut                         uint64
	Repeat, Duration                        uint32
	CtxSizeIn, CtxSizeOut                   uint32
	CtxIn, CtxOut                           uint64
	Flags, CPU, BatchSize                   uint32
	_                                       uint32
}

// testRun is BPF_PROG_TEST_RUN with a context, which ebpf.Program.Run
// takes but Program.Benchmark (the one that returns the duration) does not.
func testRun(p *ebpf.Program, frame []byte, ingress, repeat uint32) (retval, durationNs uint32, err error) {
	data := append([]byte(nil), frame...)
	md := xdpMD{DataEnd: uint32(len(data)), IngressIfindex: ingress}
	attr := testRunAttr{
		ProgFD:     uint32(p.FD()),
		DataSizeIn: uint32(len(data)),
		DataIn:     uint64(uintptr(unsafe.Pointer(&data[0]))),
		Repeat:     repeat,
		CtxSizeIn:  uint32(unsafe.Sizeof(md)),
		CtxIn:      uint64(uintptr(unsafe.Pointer(&md))),
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(data)
		runtime.KeepAlive(&md)
		if errno == unix.EINTR {
			continue // interrupted by a signal: the kernel starts over
		}
		if errno != 0 {
			return 0, 0, fmt.Errorf("lookupbench: BPF_PROG_TEST_RUN: %w", errno)
		}
		return attr.Retval, attr.Duration, nil
	}
}
