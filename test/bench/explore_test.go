package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"golang.org/x/sys/unix"
)

func envInt(k string, d int) int {
	if s := os.Getenv(k); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return d
}

func BenchmarkExplore(b *testing.B) {
	bins := buildBinaries(b)
	routes := envInt("R", 100000)
	p := newPath(b, "xdp", routes, bins)
	defer p.close()
	for _, m := range []trafficgen.Mode{trafficgen.Fixed, trafficgen.Random} {
		g, err := p.generator(m, routes)
		if err != nil {
			b.Fatal(err)
		}
		for _, pin := range []int{0, 1, -1} {
			snap := func() string {
				var sb strings.Builder
				for _, c := range [][]string{{"h1", "ethtool", "-S", "eth0"}, {"r", "ethtool", "-S", "eth1"}, {"r", "ethtool", "-S", "eth2"}, {"h2", "ethtool", "-S", "eth0"}} {
					out, _ := p.l.Output(c[0], c[1:]...)
					for _, ln := range strings.Split(out, "\n") {
						if strings.Contains(ln, ": ") && !strings.HasSuffix(ln, ": 0") {
							sb.WriteString(c[0] + "/" + c[3] + " " + strings.TrimSpace(ln) + "\n")
						}
					}
				}
				out, _ := os.ReadFile("/proc/softirqs")
				for _, ln := range strings.Split(string(out), "\n") {
					if strings.Contains(ln, "NET_RX") {
						sb.WriteString(ln + "\n")
					}
				}
				out2, _ := p.l.Output("r", p.ctl, "--api", "127.0.0.1:9179", "stats")
				sb.WriteString(out2)
				return sb.String()
			}
			c0, _ := p.sink.Received()
			before := snap()
			n := uint32(envInt("N", 2000000))
			t0 := time.Now()
			err := p.l.Do("h1", func() error {
				if pin >= 0 {
					var cpu unix.CPUSet
					cpu.Set(pin)
					if err := unix.SchedSetaffinity(0, &cpu); err != nil {
						return err
					}
				}
				return g.Send(p.h1Ifindex, n)
			})
			d := time.Since(t0)
			time.Sleep(100 * time.Millisecond)
			c1, _ := p.sink.Received()
			after := snap()
			fmt.Printf("==== mode=%v pin=%d n=%d took %v -> %.2f Mpps offered, received %d (%.1f%%) err=%v\n--before\n%s--after\n%s\n", m, pin, n, d, float64(n)/d.Seconds()/1e6, c1-c0, 100*float64(c1-c0)/float64(n), err, before, after)
		}
		g.Close()
	}
}
