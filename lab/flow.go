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
// counted. Due frames are sent every ~100 µs, at most 2 ms worth at once
// after a stall (the rate is measured, not assumed).
type Flow struct {
	fd     int
	sent   atomic.Uint64
	paused atomic.Bool
	done   chan struct{}
	wg     gosync.WaitGroup
	once   gosync.Once
	err    error
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
	burst := uint64(pps * 0.002)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		start := time.Now()
		var sent uint64 // since start
		for i := 0; ; {
			select {
			case <-f.done:
				return
			default:
			}
			if f.paused.Load() {
				start, sent = time.Now(), 0
				time.Sleep(100 * time.Microsecond) // paused: the pacing clock idles
				continue
			}
			due := uint64(time.Since(start).Seconds() * pps)
			if due > sent+burst {
				sent = due - burst // skip what a stall missed
			}
			for ; sent < due; sent++ {
				if err := unix.Sendto(f.fd, frames[i], 0, sa); err != nil {
					if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
						break
					}
					f.err = err
					return
				}
				f.sent.Add(1)
				i = (i + 1) % len(frames)
			}
			time.Sleep(100 * time.Microsecond) // the pacing clock: send what is due every 0.1 ms
		}
	}()
	return f, nil
}

// Pause stops sending until Resume (the pacing clock restarts then).
func (f *Flow) Pause() { f.paused.Store(true) }

// Resume sends again after Pause.
func (f *Flow) Resume() { f.paused.Store(false) }

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
