package fiblookup

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Indexes of the verdicts map; equal to enum verdict in fiblookup.c.
const (
	verdictForwarded = 0
	verdictPassed    = 1
)

// Forwarder is the loaded program and its counters.
type Forwarder struct {
	objs fiblookupObjects
}

// Load loads the forwarder.
func Load() (*Forwarder, error) {
	var f Forwarder
	if err := loadFiblookupObjects(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("fiblookup: load: %w", err)
	}
	return &f, nil
}

// Program returns the XDP program (for BPF_PROG_TEST_RUN or attaching).
func (f *Forwarder) Program() *ebpf.Program { return f.objs.XdpFibLookup }

// Counts returns how many frames were forwarded and passed, summed over
// CPUs.
func (f *Forwarder) Counts() (forwarded, passed uint64, err error) {
	sum := func(i uint32) (uint64, error) {
		var perCPU []uint64
		if err := f.objs.Verdicts.Lookup(i, &perCPU); err != nil {
			return 0, fmt.Errorf("fiblookup: counter %d: %w", i, err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		return n, nil
	}
	forwarded, err1 := sum(verdictForwarded)
	passed, err2 := sum(verdictPassed)
	return forwarded, passed, errors.Join(err1, err2)
}

// Close releases the program and its map.
func (f *Forwarder) Close() error { return f.objs.Close() }
