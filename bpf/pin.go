package bpf

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Hitless restart. With Options.PinPath the dataplane outlives the daemon:
// the state maps and one XDP link per port are pinned there, so the
// program keeps forwarding with the last state after the daemon exits or
// crashes. The next Load re-opens the state maps (when their layout is
// this version's), rebuilds the compiled lookup structure from the trie,
// loads the program again and swaps it into the pinned links with one
// atomic link update per port: no packet meets a detached port.
//
// The compiled arrays are not pinned: they are derived state, rebuilt from
// the trie by every Load, and the old program keeps its own until the swap.

// layoutVersion names the layout of the pinned maps (their keys, values
// and meaning). Change it with any such change: a Load that finds another
// version rebuilds the maps side by side and swaps them in.
const layoutVersion = 5 // 2: uRPF in ifaces, filters, more stats; 3: tables, policy rules; 4: 64-way resilient groups, hash seed; 5: VLAN ports

// pinMagic marks xdprouter's meta map ("xdpr").
const pinMagic = 0x78647072

// stateMaps are the pinned maps, by name.
func stateMaps() []string {
	return []string{fwdMapRoutesV4, fwdMapRoutesV6, fwdMapNhgs, fwdMapNexthops, fwdMapNhGateways,
		fwdMapNeighbors, fwdMapIfaces, fwdMapTxPorts, fwdMapStats, fwdMapMeta,
		fwdMapFilterState, fwdMapFilterClass, fwdMapFilterBitmaps, fwdMapFilterPrefixes, fwdMapFilterPorts,
		fwdMapFilterRules, fwdMapFilterCounters, fwdMapFilterBuckets,
		fwdMapRuleState, fwdMapRules, fwdMapRuleLists, fwdMapRuleSrc, fwdMapTableIds, fwdMapVlans}
}

// ErrPinPathBusy means another process holds the pin path's lock.
var ErrPinPathBusy = errors.New("in use by another xdprouterd (one daemon per pin path)")

// lockPinDir takes the pin directory's lock for the life of the Datapath:
// two daemons writing one dataplane would undo each other.
func lockPinDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open pin directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pin path %s: %w", dir, ErrPinPathBusy)
		}
		return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
	}
	return f, nil
}

// pinned is what Load found under the pin path.
type pinned struct {
	maps map[string]*ebpf.Map // state maps of this layout (all of them), or nil
	// rebuild says why the maps are not reused as they are ("" if they
	// are, or if there were none).
	rebuild string
	old     map[string]*ebpf.Map // maps of another layout, to copy from where possible
	links   map[int]attachment   // live pinned XDP links by ifindex
}

func (p *pinned) close() {
	for _, m := range p.maps {
		m.Close()
	}
	for _, m := range p.old {
		m.Close()
	}
}

// openPinned opens the pins a previous instance left in dir.
func openPinned(spec *ebpf.CollectionSpec, dir string) (*pinned, error) {
	p := &pinned{links: map[int]attachment{}}
	if err := p.openLinks(dir); err != nil {
		return nil, err
	}
	found := map[string]*ebpf.Map{}
	var missing []string
	for _, name := range stateMaps() {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			for _, m := range found {
				m.Close()
			}
			return nil, fmt.Errorf("open pinned map %s: %w", name, err)
		}
		found[name] = m
	}
	if len(found) == 0 {
		return p, nil
	}
	why := ""
	if len(missing) > 0 {
		why = "pins missing: " + strings.Join(missing, ", ")
	} else if v, err := pinVersion(found[fwdMapMeta]); err != nil {
		why = err.Error()
	} else if v != layoutVersion {
		why = fmt.Sprintf("layout version %d, this program's is %d", v, layoutVersion)
	} else {
		for _, name := range stateMaps() {
			if err := spec.Maps[name].Compatible(found[name]); err != nil {
				why = fmt.Sprintf("map %s: %v", name, err)
				break
			}
		}
	}
	if why == "" {
		p.maps = found
	} else {
		p.rebuild, p.old = why, found
	}
	return p, nil
}

func pinVersion(m *ebpf.Map) (uint32, error) {
	var v fwdPinMeta
	if err := m.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("read meta: %w", err)
	}
	if v.Magic != pinMagic {
		return 0, errors.New("meta map is not xdprouter's")
	}
	return v.Version, nil
}

// chooseHashSeed returns the ECMP hash seed of this Load: the configured
// one, else the one the pinned meta map holds (the previous instance's:
// flows stay on their members across a restart), else a random one. A
// meta map of another layout still gives its seed if it has one (from
// layout 4 on, the third word).
func chooseHashSeed(configured uint32, p *pinned) (uint32, error) {
	if configured != 0 {
		return configured, nil
	}
	for _, maps := range []map[string]*ebpf.Map{p.maps, p.old} {
		if m := maps[fwdMapMeta]; m != nil && m.ValueSize() >= 12 {
			v := make([]byte, m.ValueSize())
			if err := m.Lookup(uint32(0), &v); err == nil && binary.NativeEndian.Uint32(v) == pinMagic {
				if seed := binary.NativeEndian.Uint32(v[8:]); seed != 0 {
					return seed, nil
				}
			}
		}
	}
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("random hash seed: %w", err)
		}
		if seed := binary.NativeEndian.Uint32(b[:]); seed != 0 {
			return seed, nil
		}
	}
}

// HashSeed returns the ECMP hash seed XDP uses.
func (d *Datapath) HashSeed() uint32 { return d.hashSeed }

// linkPin names the pin of the XDP link on ifindex, with the mode it was
// attached in (the kernel does not report it).
func linkPin(dir string, ifindex int, eff Mode) string {
	return filepath.Join(dir, fmt.Sprintf("xdp-%d-%s", ifindex, eff))
}

func parseLinkPin(name string) (int, Mode, bool) {
	f := strings.Split(name, "-")
	if len(f) != 3 || f[0] != "xdp" {
		return 0, 0, false
	}
	ifindex, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	m, err := ParseMode(f[2])
	if err != nil || m == ModeAuto {
		return 0, 0, false
	}
	return ifindex, m, true
}

// openLinks opens the pinned XDP links; a link whose device is gone (the
// kernel detached it) loses its pin.
func (p *pinned) openLinks(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read pin directory: %w", err)
	}
	for _, e := range ents {
		ifindex, eff, ok := parseLinkPin(e.Name())
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		l, err := link.LoadPinnedLink(path, nil)
		if err != nil {
			return fmt.Errorf("open pinned link %s: %w", path, err)
		}
		info, err := l.Info()
		if err == nil && info.XDP() != nil && int(info.XDP().Ifindex) == ifindex {
			p.links[ifindex] = attachment{link: l, mode: eff, eff: eff}
			continue
		}
		_ = l.Unpin()
		l.Close()
	}
	return nil
}

// copyMaps fills the freshly created maps from maps of another layout
// where key and value agree (e.g. only a size changed) and reports the
// ones it could not fill.
func copyMaps(dst map[string]*ebpf.Map, old map[string]*ebpf.Map) (skipped []string) {
	for _, name := range stateMaps() {
		if name == fwdMapMeta || name == fwdMapStats || name == fwdMapFilterCounters || name == fwdMapFilterBuckets {
			continue // written fresh; counters start again
		}
		if name == fwdMapTxPorts {
			// Derived from ifaces (SetInterface rewrites it), and its
			// values are ifindexes the kernel resolves in the calling
			// thread's namespace: best effort.
			copyMap(old[name], dst[name])
			continue
		}
		o, n := old[name], dst[name]
		if o == nil || n == nil || o.Type() != n.Type() || o.KeySize() != n.KeySize() || o.ValueSize() != n.ValueSize() {
			skipped = append(skipped, name)
			continue
		}
		if !copyMap(o, n) {
			skipped = append(skipped, name)
		}
	}
	return skipped
}

// copyMap copies every entry of o into n and reports whether all went.
func copyMap(o, n *ebpf.Map) bool {
	if o == nil || n == nil || o.KeySize() != n.KeySize() || o.ValueSize() != n.ValueSize() {
		return false
	}
	k := make([]byte, o.KeySize())
	v := make([]byte, o.ValueSize())
	it := o.Iterate()
	for it.Next(&k, &v) {
		if err := n.Put(k, v); err != nil {
			return false // e.g. more entries than the new size holds
		}
	}
	return it.Err() == nil
}

// pinFresh pins the maps Load created, replacing pins of another layout
// (their maps stay alive while the old program runs).
func (d *Datapath) pinFresh(reused map[string]*ebpf.Map) error {
	byName := d.stateMapsByName()
	for _, name := range stateMaps() {
		if reused[name] != nil {
			continue
		}
		path := filepath.Join(d.pinPath, name)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace pin %s: %w", path, err)
		}
		if err := byName[name].Pin(path); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	return nil
}

func (d *Datapath) stateMapsByName() map[string]*ebpf.Map {
	m := &d.objs.fwdMaps
	return map[string]*ebpf.Map{
		fwdMapRoutesV4: m.RoutesV4, fwdMapRoutesV6: m.RoutesV6, fwdMapNhgs: m.Nhgs,
		fwdMapNexthops: m.Nexthops, fwdMapNhGateways: m.NhGateways, fwdMapNeighbors: m.Neighbors,
		fwdMapIfaces: m.Ifaces, fwdMapTxPorts: m.TxPorts, fwdMapStats: m.Stats, fwdMapMeta: m.Meta,
		fwdMapFilterState: m.FilterState, fwdMapFilterClass: m.FilterClass, fwdMapFilterBitmaps: m.FilterBitmaps,
		fwdMapFilterPrefixes: m.FilterPrefixes, fwdMapFilterPorts: m.FilterPorts, fwdMapFilterRules: m.FilterRules,
		fwdMapFilterCounters: m.FilterCounters, fwdMapFilterBuckets: m.FilterBuckets,
		fwdMapRuleState: m.RuleState, fwdMapRules: m.Rules, fwdMapRuleLists: m.RuleLists,
		fwdMapRuleSrc: m.RuleSrc, fwdMapTableIds: m.TableIds, fwdMapVlans: m.Vlans,
	}
}

// takeOver makes the state read from reused maps the Datapath's: the
// compiled structure is rebuilt from the trie, the Go mirrors of ports and
// next hops are filled, and the applied state is kept for Adopted.
func (d *Datapath) takeOver() error {
	st, err := d.readState()
	if err != nil {
		return err
	}
	slots := make([]uint32, 0, len(st.Routes))
	routes := st.Routes[:0:0]
	for _, r := range st.Routes {
		if s, err := d.tables.slot(r.Table, false); err == nil {
			routes, slots = append(routes, r), append(slots, s)
		}
	}
	d.markLocals(routes)
	d.routesWritten(routes, slots, make([]bool, len(routes)), nil, nil)
	var it fwdIface
	var k uint32
	ifs := d.objs.Ifaces.Iterate()
	for ifs.Next(&k, &it) {
		if it.Flags&uint8(fwdIfaceFlagsIFACE_F_TRUNK) != 0 {
			continue // a VLAN ports' parent, no port
		}
		d.ports[int(k)] = egressPort{mac: it.Mac, mtu: it.Mtu, vid: it.Vid}
		d.ruleClass[int(k)] = it.RuleClass
	}
	if err := ifs.Err(); err != nil {
		return fmt.Errorf("map ifaces: iterate: %w", err)
	}
	for id, nh := range st.NextHops {
		d.nhs[id] = nh
	}
	if err := d.takeOverVLANs(); err != nil {
		return err
	}
	if err := d.takeOverRules(); err != nil {
		return err
	}
	d.adopted = st
	return nil
}

// takeOverRules keeps the pinned rules in force: the source keys each
// bank holds (the next SetRules replaces them) and rules_on, which the new
// program starts without.
func (d *Datapath) takeOverRules() error {
	var (
		k fwdRuleSrcKey
		v uint32
	)
	it := d.objs.RuleSrc.Iterate()
	for it.Next(&k, &v) {
		d.srcKeys[k.Tag>>1&1][k.Tag&1] = append(d.srcKeys[k.Tag>>1&1][k.Tag&1], k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("map rule_src: iterate: %w", err)
	}
	var meta fwdRuleMeta
	if err := d.objs.RuleState.Lookup(uint32(0), &meta); err != nil {
		return fmt.Errorf("map rule_state: %w", err)
	}
	on := uint32(0)
	for fi := range 2 {
		if meta.N[meta.Bank&1][fi] != 0 {
			on |= 1 << fi
		}
	}
	if err := d.objs.RulesOn.Set(on); err != nil {
		return fmt.Errorf("set rules_on: %w", err)
	}
	return nil
}

// readState reads the maps back: the routes, the groups they name, every
// next hop ever written (with its gateway), the neighbors.
func (d *Datapath) readState() (*route.XDPState, error) {
	rs, err := d.Routes()
	if err != nil {
		return nil, err
	}
	st := &route.XDPState{Routes: rs, Groups: map[uint32][]uint32{}, NextHops: map[uint32]route.Egress{}}
	for _, r := range rs {
		if r.Kind != route.Unicast || r.Group == 0 {
			continue
		}
		if _, ok := st.Groups[r.Group]; ok {
			continue
		}
		g, err := d.Group(r.Group)
		if err != nil {
			return nil, err
		}
		st.Groups[r.Group] = g
	}
	var (
		v  fwdNexthop
		id uint32
	)
	it := d.objs.Nexthops.Iterate()
	for it.Next(&id, &v) {
		if v.Ifindex == 0 {
			continue
		}
		nh := nextHopFrom(v)
		var gw fwdNhGateway
		if err := d.objs.NhGateways.Lookup(id, &gw); err != nil {
			return nil, fmt.Errorf("map nh_gateways: %d: %w", id, err)
		}
		nh.Gateway = gatewayFrom(gw)
		st.NextHops[id] = nh
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("map nexthops: iterate: %w", err)
	}
	ns, err := d.Neighbors()
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		st.Neighbors = append(st.Neighbors, route.Neighbor{Ifindex: n.Ifindex, Addr: n.Addr, MAC: n.MAC, Valid: true})
	}
	return st, nil
}

func gatewayFrom(g fwdNhGateway) netip.Addr {
	if g.Addr == ([16]byte{}) {
		return netip.Addr{}
	}
	return netip.AddrFrom16(g.Addr).Unmap()
}

func gatewayOf(a netip.Addr) fwdNhGateway {
	if !a.IsValid() {
		return fwdNhGateway{}
	}
	return fwdNhGateway{Addr: a.WithZone("").As16()}
}

// Adopted returns the state a previous instance left in the pinned maps,
// as read by Load (nil if Load created the maps): sync takes it as its
// applied state, so that a restart rewrites nothing that is right.
func (d *Datapath) Adopted() *route.XDPState { return d.adopted }

// Teardown removes the dataplane pinned under dir: the XDP links (the
// kernel then detaches the program from every port, within moments: a
// link whose last pin goes is released by a work queue) and the maps,
// then the directory.
// It takes the pin path's lock, so it refuses while a daemon runs.
func Teardown(dir string) error {
	lock, err := lockPinDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	return removePins(dir)
}

// Teardown closes d and removes its pinned dataplane (see Teardown).
func (d *Datapath) Teardown() error {
	if d.pinPath == "" {
		return d.Close()
	}
	err := removePins(d.pinPath) // under d's lock
	return errors.Join(err, d.Close())
}

func removePins(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read pin directory: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
