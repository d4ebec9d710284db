package bpf

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
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

// timedRun runs the program once on frame arriving on ingress and returns
// the verdict and the kernel-measured run time in ns. Once: a forwarded
// frame is rewritten in place (TTL, tag), so repeats in one call would not
// run the same path; cilium/ebpf's Benchmark takes no ingress context.
func timedRun(fd int, frame, out []byte, ctx *xdpMD) (uint32, uint32, error) {
	a := testRunAttr{
		progFD: uint32(fd), dataSizeIn: uint32(len(frame)), dataSizeOut: uint32(len(out)),
		dataIn: uint64(uintptr(unsafe.Pointer(&frame[0]))), dataOut: uint64(uintptr(unsafe.Pointer(&out[0]))),
		repeat: 1, ctxSizeIn: uint32(unsafe.Sizeof(*ctx)), ctxIn: uint64(uintptr(unsafe.Pointer(ctx))),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a))
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
// (BPF_PROG_TEST_RUN, kernel-measured, one frame per run, the cases
// interleaved). The floor is a frame passed at once (ARP): the timer's
// own cost, in every number. Reported: ns/pkt per case, and the cost of
// each tagged case over the untagged one (ratio, and extra ns).
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
	cases := []struct {
		name    string
		frame   []byte
		ingress int
		want    uint32
	}{
		{"floor", plain("", macA), p.a, xdpPass},
		{"untagged", plain("10.2.0.1", macA), p.a, xdpRedirect},
		{"pop", tagged(plain("10.2.0.1", macTrunk), 0x8100, 100), p.parent, xdpRedirect},
		{"push", plain("10.200.0.1", macA), p.a, xdpRedirect},
		{"rewrite", tagged(plain("10.200.0.1", macTrunk), 0x8100, 100), p.parent, xdpRedirect},
	}
	total := make([]float64, len(cases))
	runs := 0
	// The ingress ifindexes are the namespace's: run on a thread in it.
	err := p.ns.Do(func() error {
		fd := d.Program().FD()
		out := make([]byte, 2048)
		for _, c := range cases {
			ctx := xdpMD{DataEnd: uint32(len(c.frame)), IngressIfindex: uint32(c.ingress)}
			ret, _, err := timedRun(fd, c.frame, out, &ctx)
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
				for range batch {
					_, ns, err := timedRun(fd, c.frame, out, &ctx)
					if err != nil {
						return err
					}
					total[i] += float64(ns)
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
	for i, c := range cases[2:] {
		x := per[i+2]
		b.ReportMetric(x/base, "ratio-"+c.name)
		b.Logf("%-8s %6.1f ns/pkt  %.3fx untagged (%+.1f ns; %.3fx over the floor %.1f ns)",
			c.name, x, x/base, x-base, (x-per[0])/(base-per[0]), per[0])
	}
	b.Logf("untagged %6.1f ns/pkt, floor (ARP, passed at once) %.1f ns/pkt, %d runs each", base, per[0], runs)
}
