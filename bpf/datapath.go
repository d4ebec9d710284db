package bpf

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/lpm"
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
	// PinPath, if set, is a directory on bpffs where the state maps and
	// the XDP links are pinned, so that the dataplane outlives the
	// process (see pin.go). It is created if missing and locked while the
	// Datapath is open. Pins a previous run left are taken over.
	PinPath string
	// Map sizes (max_entries).
	MaxRoutesV4, MaxRoutesV6, MaxGroups, MaxNextHops, MaxNeighbors uint32
	// Lookup selects the structure packets are looked up in.
	Lookup LookupMode
	// HashSeed seeds the ECMP flow hash. 0: the seed a pinned dataplane
	// holds, else a random one (kept in the pins for the next Load).
	HashSeed uint32
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
	dataSections // for the explain instance (explain.go)
}

func (l *loaded) Close() error {
	return errors.Join(l.fwdPrograms.Close(), l.fwdMaps.Close(), l.dataSections.Close())
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
	nhs      map[uint32]route.Egress                   // next hops as set, by id
	ports    map[int]egressPort                        // SetInterface'd ports, by ifindex
	urpf     map[int]URPFMode                          // SetURPF'd ports, by ifindex
	vlans    map[int]vlanPort                          // VLAN ports (vlan.go), by ifindex
	vlanOf   func(ifindex int) (vlanPort, bool, error) // portVLAN; tests fake VLAN devices

	groupMu  sync.Mutex // SetGroupFrom's read-modify-write
	hashSeed uint32

	compiled *compiled
	filters  *filters
	tables   *tables

	// The explain instance (explain.go), loaded on first use, and the
	// tracer (trace.go).
	exMu   sync.Mutex
	ex     *explainer
	tracer tracer

	// The local routes (tables.go, local_bloom), guarded by localMu.
	localMu sync.Mutex
	locals  map[route.TablePrefix]struct{}

	// Policy rules (rules.go), guarded by rmu: the last list given, as
	// compiled, the source keys written per bank and family, and the
	// ports' interface classes per bank (guarded by egressMu).
	rmu         sync.Mutex
	lastRules   []route.Rule
	lastIfindex func(string) int
	rules       *ruleSet
	rulesErr    error
	srcKeys     [2][2][]fwdRuleSrcKey
	ruleClass   map[int][2]uint8

	// Hitless restart (pin.go). lock is the pin directory's lock.
	// adoptedLinks are the pinned links of a previous instance not yet
	// taken over by Attach; adopted is the state read back from the
	// pinned maps (nil: fresh maps); preserved: the maps were reused and
	// the program was forwarding; rebuilt says why the pinned maps were
	// not reused as they were; deferSwap: the new maps are not filled
	// yet, so Attach leaves the old program in place until SwapIn.
	lock         *os.File
	adoptedLinks map[int]attachment
	adopted      *route.XDPState
	preserved    bool
	rebuilt      string
	deferSwap    bool
	swapPending  []int
}

// Preserved reports whether Load took over a pinned dataplane left by a
// previous instance, which kept forwarding while no daemon ran (BGP
// graceful restart's forwarding-state bit).
func (d *Datapath) Preserved() bool { return d.preserved }

// egressPort is what next hops copy from their port.
type egressPort struct {
	mac [6]byte
	mtu uint32
	vid uint16 // a VLAN port's VLAN id (vlan.go), else 0
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
	if opts.MaxGroups > lpm.MaxGroup+1 {
		return nil, fmt.Errorf("%d next-hop groups: XDP's route entries hold at most %d", opts.MaxGroups, lpm.MaxGroup+1)
	}
	lpmSizes(spec, opts)

	d := &Datapath{pinPath: opts.PinPath, links: make(map[int]attachment), targets: make(map[int]string),
		nhs: make(map[uint32]route.Egress), ports: make(map[int]egressPort), urpf: make(map[int]URPFMode),
		vlans: map[int]vlanPort{}, vlanOf: portVLAN,
		ruleClass: map[int][2]uint8{}, locals: map[route.TablePrefix]struct{}{}}
	var (
		colOpts ebpf.CollectionOptions
		pins    = &pinned{}
	)
	if opts.PinPath != "" {
		if err := preparePinDir(opts.PinPath); err != nil {
			return nil, err
		}
		if d.lock, err = lockPinDir(opts.PinPath); err != nil {
			return nil, err
		}
		if pins, err = openPinned(spec, opts.PinPath); err != nil {
			d.lock.Close()
			return nil, err
		}
		defer pins.close() // the collection holds clones
		colOpts.MapReplacements = pins.maps
	}
	fail := func(err error) (*Datapath, error) {
		for _, a := range pins.links {
			a.link.Close()
		}
		d.compiled.close()
		d.filters.close()
		d.objs.Close()
		if d.lock != nil {
			d.lock.Close()
		}
		return nil, err
	}
	if d.hashSeed, err = chooseHashSeed(opts.HashSeed, pins); err != nil {
		return fail(err)
	}
	if err := spec.Variables[fwdVarHashSeed].Set(d.hashSeed); err != nil {
		return fail(fmt.Errorf("set hash_seed: %w", err))
	}
	if err := spec.LoadAndAssign(&d.objs, &colOpts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fail(fmt.Errorf("load XDP program: %w (verifier log:\n%+v)", err, ve))
		}
		return fail(fmt.Errorf("load XDP program: %w", err))
	}
	if d.compiled, err = newCompiled(&d.objs.fwdMaps, &d.objs.fwdVariables, opts.Lookup); err != nil {
		return fail(err)
	}
	if d.tables, err = newTables(d.objs.TableIds); err != nil {
		return fail(err)
	}
	if d.filters, err = newFilters(&d.objs.fwdMaps); err != nil {
		return fail(err)
	}
	if opts.PinPath == "" {
		return d, nil
	}
	d.adoptedLinks = pins.links
	d.rebuilt = pins.rebuild
	reused := pins.maps != nil
	if pins.old != nil {
		// Another layout: new maps side by side, filled from the old ones
		// where they agree; the old program keeps forwarding with its own
		// maps until the swap (at once if everything was copied, else once
		// sync has filled the new ones: SwapIn).
		skipped := copyMaps(d.stateMapsByName(), pins.old)
		if len(skipped) == 0 {
			reused = true
		} else {
			d.rebuilt += " (rebuilt: " + strings.Join(skipped, ", ") + ")"
			d.deferSwap = len(pins.links) > 0
		}
	}
	if err := d.objs.Meta.Put(uint32(0), fwdPinMeta{Magic: pinMagic, Version: layoutVersion, HashSeed: d.hashSeed}); err != nil {
		return fail(fmt.Errorf("map meta: %w", err))
	}
	if err := d.pinFresh(pins.maps); err != nil {
		return fail(err)
	}
	if reused {
		if err := d.takeOver(); err != nil {
			return fail(fmt.Errorf("read back the pinned maps: %w", err))
		}
		d.preserved = len(pins.links) > 0
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

// Close closes the program and maps. Without a pin path it detaches
// every interface attached through d; with one, the pinned dataplane keeps
// forwarding (Teardown removes it).
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()

	var errs []error
	for ifindex, a := range d.links {
		if err := a.link.Close(); err != nil && d.pinPath == "" {
			errs = append(errs, fmt.Errorf("detach XDP from ifindex %d: %w", ifindex, err))
		}
		delete(d.links, ifindex)
	}
	for ifindex, a := range d.adoptedLinks {
		a.link.Close()
		delete(d.adoptedLinks, ifindex)
	}
	d.compiled.close()
	d.filters.close()
	d.exMu.Lock()
	d.ex.close()
	d.ex = nil
	d.exMu.Unlock()
	d.tracer.stop()
	if err := d.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
	return errors.Join(errs...)
}

// Attach attaches the XDP program to ifindex, which is resolved in the
// network namespace of the calling OS thread. ModeAuto tries native mode
// first and falls back to generic mode. Attaching an interface that d has
// already attached in the same mode is a no-op. A pinned link a previous
// instance left on ifindex is taken over: the program is swapped in
// atomically (link update), so forwarding never stops.
func (d *Datapath) Attach(ifindex int, mode Mode) error {
	d.mu.Lock()
	defer d.mu.Unlock()

	if a, ok := d.links[ifindex]; ok {
		if a.mode == mode {
			return nil
		}
		return fmt.Errorf("attach XDP to ifindex %d in %s mode: %w (%s)", ifindex, mode, ErrModeMismatch, a.mode)
	}
	if a, ok := d.adoptedLinks[ifindex]; ok {
		delete(d.adoptedLinks, ifindex)
		if mode == ModeAuto || mode == a.eff {
			a.mode = mode
			if d.deferSwap {
				d.links[ifindex] = a
				d.swapPending = append(d.swapPending, ifindex)
				return nil
			}
			err := a.link.Update(d.objs.XdpFwd)
			if err == nil {
				d.links[ifindex] = a
				return nil
			}
			// Replace it below (a short gap, but a working port).
			_ = a.link.Unpin()
			a.link.Close()
		} else {
			// Another mode asked for: the old link must go first.
			_ = a.link.Unpin()
			if err := a.link.Close(); err != nil {
				return fmt.Errorf("detach the previous instance's XDP from ifindex %d: %w", ifindex, err)
			}
		}
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
	if d.pinPath != "" {
		path := linkPin(d.pinPath, ifindex, eff)
		_ = os.Remove(path) // a link of a deleted device
		if err := l.Pin(path); err != nil {
			l.Close()
			return fmt.Errorf("attach XDP to ifindex %d: pin link: %w", ifindex, err)
		}
	}
	d.links[ifindex] = attachment{link: l, mode: mode, eff: eff}
	return nil
}

// SwapIn puts the program into the ports whose previous program was left
// running because the pinned maps had another layout (see Rebuilt): call
// it once sync has filled the new maps.
func (d *Datapath) SwapIn() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deferSwap = false
	var errs []error
	for _, ifindex := range d.swapPending {
		a, ok := d.links[ifindex]
		if !ok {
			continue
		}
		if err := a.link.Update(d.objs.XdpFwd); err != nil {
			errs = append(errs, fmt.Errorf("swap the program into ifindex %d: %w", ifindex, err))
		}
	}
	d.swapPending = nil
	return errors.Join(errs...)
}

// Rebuilt says why Load did not reuse the pinned maps as they were (""
// if it did, or found none).
func (d *Datapath) Rebuilt() string { return d.rebuilt }

// ReleaseAdopted detaches the pinned links of a previous instance that
// Attach did not take over (ports no longer configured) and returns their
// ifindexes.
func (d *Datapath) ReleaseAdopted() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	for ifindex, a := range d.adoptedLinks {
		_ = a.link.Unpin()
		a.link.Close()
		delete(d.adoptedLinks, ifindex)
		out = append(out, ifindex)
	}
	return out
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
	if err := d.detach(ifindex); err != nil {
		return err
	}
	return d.dropTrunk(ifindex) // after d.mu: egressMu comes first
}

func (d *Datapath) detach(ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()

	a, ok := d.links[ifindex]
	if !ok {
		return nil
	}
	if d.pinPath != "" {
		_ = a.link.Unpin()
	}
	if err := a.link.Close(); err != nil {
		return fmt.Errorf("detach XDP from ifindex %d: %w", ifindex, err)
	}
	delete(d.links, ifindex)
	return nil
}
