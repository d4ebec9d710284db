package bpf

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// testRunAttr is union bpf_attr's test member (BPF_PROG_TEST_RUN).
type testRunAttr struct {
	progFD, retval          uint32
	dataSizeIn, dataSizeOut uint32
	dataIn, dataOut         uint64
	repeat, duration        uint32
	ctxSizeIn, ctxSizeOut   uint32
	ctxIn, ctxOut           uint64
	flags, cpu, batchSize   uint32
	_                       uint32
}

// timedRun runs the program repeat times on frame arriving on ingress and
// returns the verdict and the kernel-measured time per run in ns. The runs
// share one buffer: a forwarded frame's TTL drops by one per run, and a
// popped or pushed tag moves the head, so only frames that stay on their
// path (TTL 255, tag kept or none) may repeat. cilium/ebpf's Benchmark
// takes no ingress context.
func timedRun(fd int, frame, out []byte, ctx *xdpMD, repeat uint32) (uint32, uint32, error) {
	a := testRunAttr{
		progFD: uint32(fd), dataSizeIn: uint32(len(frame)), dataSizeOut: uint32(len(out)),
		dataIn: uint64(uintptr(unsafe.Pointer(&frame[0]))), dataOut: uint64(uintptr(unsafe.Pointer(&out[0]))),
		repeat: repeat, ctxSizeIn: uint32(unsafe.Sizeof(*ctx)), ctxIn: uint64(uintptr(unsafe.Pointer(ctx))),
	}
	var errno unix.Errno
	for { // the Go runtime's signals interrupt long runs: run again
		_, _, errno = unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a))
		if errno != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(frame)
	runtime.KeepAlive(out)
	runtime.KeepAlive(ctx)
	if errno != 0 {
		return 0, 0, errno
	}
	return a.retval, a.duration, nil
}

// BenchmarkVLAN compares, in one run, the per-packet cost of forwarding
// untagged frames with frames whose tag is popped, pushed or rewritten
// (BPF_PROG_TEST_RUN, kernel-measured, the cases interleaved). Cold: one
// frame per syscall, as pop and push need (see timedRun); the floor is a
// frame passed at once (ARP), the timer's and the cold caches' own cost,
// in every cold number. Warm: untagged and rewritten frames (TTL 255),
// 200 runs per syscall. Reported: ns/pkt per case, and the cost of each
// tagged case over the untagged one (ratio, and extra ns).
func BenchmarkVLAN(b *testing.B) {
	d := loadTest(b)
	p := setupVLANs(b, d)
	plain := func(dst string, mac []byte) []byte {
		var f []byte
		if dst == "" {
			f = v4("10.2.0.1").with(func(k *pkt) { k.ethertype = 0x0806 }).build()
		} else {
			f = v4(dst).build()
		}
		copy(f, mac)
		return f
	}
	// Warm repeats rewrite one buffer: routes whose next hop's MAC is the
	// ingress port's keep the frame addressed to the router, TTL 255 keeps
	// it alive.
	for id, nh := range map[uint32]route.Egress{250: {Ifindex: p.b, MAC: macA}, 251: {Ifindex: p.v200, MAC: macTrunk}} {
		if err := d.SetNextHop(id, nh); err != nil {
			b.Fatal(err)
		}
		if err := d.SetGroup(id, []uint32{id}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.250.0.0/16"), Group: 250}, {Prefix: pfx("10.251.0.0/16"), Group: 251}}); err != nil {
		b.Fatal(err)
	}
	ttl255 := func(f []byte) []byte {
		f = append([]byte(nil), f...)
		l3 := len(f) - 20 - 8 // IPv4 UDP without payload
		f[l3+8] = 255
		binary.BigEndian.PutUint16(f[l3+10:], 0)
		binary.BigEndian.PutUint16(f[l3+10:], ipv4Checksum(f[l3:l3+20]))
		return f
	}
	cases := []struct {
		name    string
		frame   []byte
		ingress int
		want    uint32
		repeat  uint32
	}{
		{"floor", plain("", macA), p.a, xdpPass, 1},
		{"untagged", plain("10.2.0.1", macA), p.a, xdpRedirect, 1},
		{"pop", tagged(plain("10.2.0.1", macTrunk), 0x8100, 100), p.parent, xdpRedirect, 1},
		{"push", plain("10.200.0.1", macA), p.a, xdpRedirect, 1},
		{"rewrite", tagged(plain("10.200.0.1", macTrunk), 0x8100, 100), p.parent, xdpRedirect, 1},
		{"warm-untagged", ttl255(plain("10.250.0.1", macA)), p.a, xdpRedirect, 200},
		{"warm-rewrite", tagged(ttl255(plain("10.251.0.1", macTrunk)), 0x8100, 100), p.parent, xdpRedirect, 200},
		// To a local address (passed): the tag's parse and lookup alone.
		{"warm-local", plain("192.0.2.1", macA), p.a, xdpPass, 200},
		{"warm-local-tagged", tagged(plain("192.0.2.1", macTrunk), 0x8100, 100), p.parent, xdpPass, 200},
	}
	total := make([]float64, len(cases))
	runs := 0
	// The ingress ifindexes are the namespace's: run on a thread in it.
	err := p.ns.Do(func() error {
		fd := d.Program().FD()
		out := make([]byte, 2048)
		for _, c := range cases {
			ctx := xdpMD{DataEnd: uint32(len(c.frame)), IngressIfindex: uint32(c.ingress)}
			ret, _, err := timedRun(fd, c.frame, out, &ctx, 1)
			if err != nil {
				return err
			}
			if ret != c.want {
				return fmt.Errorf("%s: %s, want %s", c.name, xdpNames[ret], xdpNames[c.want])
			}
		}
		const batch = 1000
		b.ResetTimer()
		for b.Loop() {
			for i, c := range cases {
				ctx := xdpMD{DataEnd: uint32(len(c.frame)), IngressIfindex: uint32(c.ingress)}
				for range batch / c.repeat {
					ret, ns, err := timedRun(fd, c.frame, out, &ctx, c.repeat)
					if err != nil {
						return err
					}
					if ret != c.want {
						return fmt.Errorf("%s: %s, want %s ", c.name, xdpNames[ret], xdpNames[c.want])
					}
					total[i] += float64(ns) * float64(c.repeat)
				}
			}
			runs += batch
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	per := make([]float64, len(cases))
	for i, c := range cases {
		per[i] = total[i] / float64(runs)
		b.ReportMetric(per[i], "ns/pkt-"+c.name)
	}
	base := per[1]
	for i, c := range cases[2:5] {
		x := per[i+2]
		b.ReportMetric(x/base, "ratio-"+c.name)
		b.Logf("cold %-8s %6.1f ns/pkt  %.3fx untagged (%+.1f ns; %.3fx over the floor %.1f ns)",
			c.name, x, x/base, x-base, (x-per[0])/(base-per[0]), per[0])
	}
	b.Logf("cold untagged %6.1f ns/pkt, floor (ARP, passed at once) %.1f ns/pkt, %d runs each", base, per[0], runs)
	wb, wr := per[5], per[6]
	b.ReportMetric(wr/wb, "ratio-warm-rewrite")
	b.Logf("warm untagged %.1f ns/pkt, rewrite %.1f ns/pkt: %.3fx (%+.1f ns)", wb, wr, wr/wb, wr-wb)
	lb, lt := per[7], per[8]
	b.ReportMetric(lt/lb, "ratio-warm-local-tagged")
	b.Logf("warm to a local address: untagged %.1f ns/pkt, tagged %.1f ns/pkt: %.3fx (%+.1f ns)", lb, lt, lt/lb, lt-lb)
}
