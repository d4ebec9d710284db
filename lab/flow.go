package lab

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Flow sends prebuilt Ethernet frames out of an interface of a lab
// namespace at a steady rate (a packet socket; frames round-robin), for
// measuring loss across events: compare Sent with what the receiver
// counted.
type Flow struct {
	fd   int
	sent atomic.Uint64
	done chan struct{}
	wg   gosync.WaitGroup
	once gosync.Once
	err  error
}

// StartFlow starts sending frames out of ifname in role's namespace at pps.
func (l *Lab) StartFlow(role, ifname string, frames [][]byte, pps float64) (*Flow, error) {
	if len(frames) == 0 {
		return nil, errors.New("flow: no frames")
	}
	f := &Flow{fd: -1, done: make(chan struct{})}
	var ifindex int
	err := l.Do(role, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		ifindex = ifc.Index
		f.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: receives nothing
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("flow from %s %s: %w", role, ifname, err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		start := time.Now()
		var n uint64
		for {
			select {
			case <-f.done:
				return
			default:
			}
			// The sender's clock: send what is due, every millisecond.
			for due := uint64(time.Since(start).Seconds() * pps); n < due; n++ {
				if err := unix.Sendto(f.fd, frames[n%uint64(len(frames))], 0, sa); err != nil {
					if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
						break
					}
					f.err = err
					return
				}
				f.sent.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return f, nil
}

// Sent is how many frames went out so far.
func (f *Flow) Sent() uint64 { return f.sent.Load() }

// Stop stops sending and returns the sender's error, if any.
func (f *Flow) Stop() error {
	f.once.Do(func() {
		close(f.done)
		f.wg.Wait()
		unix.Close(f.fd)
	})
	return f.err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// SNMPCounter returns counter name of protocol proto ("Ip", "Udp", ...)
// from the text of a /proc/net/snmp.
func SNMPCounter(snmp, proto, name string) (uint64, error) {
	var names []string
	for _, ln := range strings.Split(snmp, "\n") {
		f := strings.Fields(ln)
		if len(f) < 2 || f[0] != proto+":" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("snmp: no %s %s", proto, name)
}
