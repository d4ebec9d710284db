package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Errors returned (wrapped) by Datapath methods; test with errors.Is.
var (
	// ErrNotBPFFS means Options.PinPath is not on a bpf filesystem.
	ErrNotBPFFS = errors.New("not on a bpf filesystem (mount -t bpf bpf <dir>)")
	// ErrTooManyNextHops means a group has more than MaxECMP members.
	ErrTooManyNextHops = errors.New("too many next hops in group")
	// ErrModeMismatch means an interface is already attached in another mode.
	ErrModeMismatch = errors.New("already attached in another mode")
)

// Options configures Load. Zero values select the defaults.
type Options struct {
	// PinPath, if set, is a directory on bpffs where the maps are pinned by
	// name. It is created if missing. Pins left by a previous run are
	// replaced, not reused.
	PinPath string
	// Map sizes (max_entries).
	MaxRoutesV4, MaxRoutesV6, MaxGroups, MaxNextHops, MaxNeighbors uint32
	// Lookup selects the structure packets are looked up in.
	Lookup LookupMode
}

// Mode selects how Attach hooks the XDP program into an interface.
type Mode int

const (
	// ModeAuto tries native (driver) mode and falls back to generic mode.
	ModeAuto Mode = iota
	// ModeNative attaches in driver mode and fails if the driver lacks XDP.
	ModeNative
	// ModeGeneric attaches in generic (SKB) mode, which every device supports.
	ModeGeneric
)

// String returns the name accepted by ParseMode.
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "auto", "native" or "generic".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return ModeAuto, nil
	case "native":
		return ModeNative, nil
	case "generic":
		return ModeGeneric, nil
	}
	return 0, fmt.Errorf("unknown XDP mode %q (want auto, native or generic)", s)
}

// loaded is what Load takes from the collection: the program and the maps,
// not the .rodata anchor that only keeps enums in BTF.
type loaded struct {
	fwdPrograms
	fwdMaps
	fwdVariables
}

func (l *loaded) Close() error {
	return errors.Join(l.fwdPrograms.Close(), l.fwdMaps.Close())
}

type attachment struct {
	link link.Link
	mode Mode // as requested
	eff  Mode // as attached: native or generic
}

// Datapath is the loaded XDP forwarder and its maps. Its methods are safe
// for concurrent use.
type Datapath struct {
	objs    loaded
	pinPath string

	mu    sync.Mutex
	links map[int]attachment
	// targets holds, per SetInterface'd port, why it is not a redirect
	// target ("" if it is): see redirectCheck.
	targets map[int]string

	// egressMu serializes the writers of next hops and ports: a next hop's
	// map value carries its port's source MAC and MTU (see SetNextHop), so
	// the Go side mirrors both and rewrites a port's next hops when the
	// port changes.
	egressMu sync.Mutex
	nhs      map[uint32]route.Egress // next hops as set, by id
	ports    map[int]egressPort      // SetInterface'd ports, by ifindex

	compiled *compiled

	// preserved: Load re-opened a pinned dataplane that was forwarding
	// (hitless restart); see Preserved.
	preserved bool
}

// Preserved reports whether Load took over a pinned dataplane left by a
// previous instance, which kept forwarding while no daemon ran (BGP
// graceful restart's forwarding-state bit).
func (d *Datapath) Preserved() bool { return d.preserved }

// egressPort is what next hops copy from their port.
type egressPort struct {
	mac [6]byte
	mtu uint32
}

// Load loads the XDP program and creates its maps.
func Load(opts Options) (*Datapath, error) {
	spec, err := loadFwd()
	if err != nil {
		return nil, err
	}
	// The defaults are fwd.h's DEFAULT_MAX_* (the object's max_entries):
	// one definition.
	sizes := map[string]uint32{
		fwdMapRoutesV4:  opts.MaxRoutesV4,
		fwdMapRoutesV6:  opts.MaxRoutesV6,
		fwdMapNhgs:      opts.MaxGroups,
		fwdMapNexthops:  opts.MaxNextHops,
		fwdMapNeighbors: opts.MaxNeighbors,
	}
	for name, n := range sizes {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("map %s missing from the BPF object", name)
		}
		if n != 0 {
			ms.MaxEntries = n
		}
	}
	lpmSizes(spec, opts)

	var colOpts ebpf.CollectionOptions
	if opts.PinPath != "" {
		if err := preparePinDir(opts.PinPath); err != nil {
			return nil, err
		}
		for _, name := range mapNames() {
			// Replace pins from a previous run: hitless reuse is not
			// implemented yet, and a stale map may have another layout.
			p := filepath.Join(opts.PinPath, name)
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove stale pin %s: %w", p, err)
			}
			spec.Maps[name].Pinning = ebpf.PinByName
		}
		colOpts.Maps.PinPath = opts.PinPath
	}

	d := &Datapath{pinPath: opts.PinPath, links: make(map[int]attachment), targets: make(map[int]string),
		nhs: make(map[uint32]route.Egress), ports: make(map[int]egressPort)}
	if err := spec.LoadAndAssign(&d.objs, &colOpts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load XDP program: %w (verifier log:\n%+v)", err, ve)
		}
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	if d.compiled, err = newCompiled(&d.objs.fwdMaps, &d.objs.fwdVariables, opts.Lookup); err != nil {
		d.objs.Close()
		return nil, err
	}
	return d, nil
}

// Capacity is how many entries the group and next-hop maps hold.
type Capacity struct {
	Groups, NextHops uint32
}

// Capacity returns the sizes of the loaded group and next-hop maps.
func (d *Datapath) Capacity() Capacity {
	return Capacity{Groups: d.objs.Nhgs.MaxEntries(), NextHops: d.objs.Nexthops.MaxEntries()}
}

func mapNames() []string {
	return []string{fwdMapRoutesV4, fwdMapRoutesV6, fwdMapNhgs, fwdMapNexthops,
		fwdMapNeighbors, fwdMapIfaces, fwdMapTxPorts, fwdMapStats}
}

func (d *Datapath) maps() []*ebpf.Map {
	m := &d.objs.fwdMaps
	return []*ebpf.Map{m.RoutesV4, m.RoutesV6, m.Nhgs, m.Nexthops, m.Neighbors,
		m.Ifaces, m.TxPorts, m.Stats}
}

func preparePinDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs pin directory %s: %w", dir, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin directory %s: %w", dir, ErrNotBPFFS)
	}
	return nil
}

// Program returns the XDP program, e.g. for BPF_PROG_TEST_RUN in
// benchmarks. It is owned by d: do not close it.
func (d *Datapath) Program() *ebpf.Program {
	return d.objs.XdpFwd
}

// Close detaches every interface attached through d, removes d's pins and
// closes the program and maps.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()

	var errs []error
	for ifindex, a := range d.links {
		if err := a.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach XDP from ifindex %d: %w", ifindex, err))
		}
		delete(d.links, ifindex)
	}
	if d.pinPath != "" {
		for _, m := range d.maps() {
			if m == nil {
				continue
			}
			if err := m.Unpin(); err != nil {
				errs = append(errs, fmt.Errorf("unpin map %s: %w", m, err))
			}
		}
	}
	d.compiled.close()
	if err := d.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Attach attaches the XDP program to ifindex, which is resolved in the
// network namespace of the calling OS thread. ModeAuto tries native mode
// first and falls back to generic mode. Attaching an interface that d has
// already attached in the same mode is a no-op.
func (d *Datapath) Attach(ifindex int, mode Mode) error {
	d.mu.Lock()
	defer d.mu.Unlock()

	if a, ok := d.links[ifindex]; ok {
		if a.mode == mode {
			return nil
		}
		return fmt.Errorf("attach XDP to ifindex %d in %s mode: %w (%s)", ifindex, mode, ErrModeMismatch, a.mode)
	}

	attach := func(flags link.XDPAttachFlags) (link.Link, error) {
		return link.AttachXDP(link.XDPOptions{Program: d.objs.XdpFwd, Interface: ifindex, Flags: flags})
	}
	var (
		l   link.Link
		err error
		eff = mode
	)
	switch mode {
	case ModeNative:
		l, err = attach(link.XDPDriverMode)
	case ModeGeneric:
		l, err = attach(link.XDPGenericMode)
	case ModeAuto:
		eff = ModeNative
		l, err = attach(link.XDPDriverMode)
		if err != nil {
			var errGeneric error
			eff = ModeGeneric
			l, errGeneric = attach(link.XDPGenericMode)
			if errGeneric != nil {
				err = fmt.Errorf("native: %w; generic: %w", err, errGeneric)
			} else {
				err = nil
			}
		}
	default:
		return fmt.Errorf("attach XDP to ifindex %d: invalid mode %s", ifindex, mode)
	}
	if err != nil {
		return fmt.Errorf("attach XDP to ifindex %d in %s mode: %w", ifindex, mode, err)
	}
	d.links[ifindex] = attachment{link: l, mode: mode, eff: eff}
	return nil
}

// AttachedMode reports how the program is attached to ifindex: ModeNative
// or ModeGeneric (what ModeAuto chose), and false if it is not attached.
func (d *Datapath) AttachedMode(ifindex int) (Mode, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.links[ifindex]
	return a.eff, ok
}

// Detach removes the XDP program from ifindex. Detaching an interface that
// d did not attach is a no-op.
func (d *Datapath) Detach(ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()

	a, ok := d.links[ifindex]
	if !ok {
		return nil
	}
	if err := a.link.Close(); err != nil {
		return fmt.Errorf("detach XDP from ifindex %d: %w", ifindex, err)
	}
	delete(d.links, ifindex)
	return nil
}
