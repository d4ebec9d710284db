package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// 802.1Q VLAN ports. A router port may be a VLAN device (eth1.100): XDP
// runs on its parent (the real device, attached once for all its VLANs),
// which receives the tagged frames. The maps (fwd.h, struct vlan_key):
//
//   - vlans: (parent ifindex, VLAN id) → the VLAN port's ifindex and a
//     copy of its ifaces entry (one lookup per tagged frame; putIface
//     writes both). A tagged frame arrives on that port: uRPF, policy
//     rules and filters see it as the kernel does (iif eth1.100). An
//     unknown VLAN id passes (vlan_unknown), as do 802.1ad and stacked
//     tags (vlan_other).
//   - tx_ports: the VLAN port → its parent, the device frames go out of;
//     the next hop's vid (copied from the port like its MAC and MTU) says
//     which tag the frame gets. Routes and neighbors name the VLAN port,
//     as in the kernel.
//   - ifaces: the VLAN port's entry as any port's (its MAC, checked on
//     ingress, its MTU, uRPF, rule class) plus its vid. A parent that is
//     no router port itself gets an entry flagged IFACE_F_TRUNK: its
//     untagged frames go to the kernel (vlan_unknown).
//
// The tag stays on the frame until it is redirected: a frame passed to
// the kernel arrives there as it came. Tagged in and out: the TCI is
// rewritten in place; otherwise the head moves by 4 bytes (finish).

// vlanPort is a VLAN port's place on its parent.
type vlanPort struct {
	parent int
	vid    uint16
}

// portVLAN says whether ifindex is an 802.1Q VLAN device, and on what.
// 802.1ad devices are not: their frames are the kernel's (vlan_other).
func portVLAN(ifindex int) (vlanPort, bool, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return vlanPort{}, false, fmt.Errorf("ifindex %d: %w", ifindex, err)
	}
	v, ok := l.(*netlink.Vlan)
	if !ok || v.VlanProtocol == netlink.VLAN_PROTOCOL_8021AD || v.ParentIndex <= 0 {
		return vlanPort{}, false, nil
	}
	return vlanPort{parent: v.ParentIndex, vid: uint16(v.VlanId)}, true, nil
}

// VLANParent returns the device XDP must be attached to for ifindex to be
// a router port: its parent if it is an 802.1Q VLAN device, else itself.
// ifindex is resolved in the network namespace of the calling OS thread.
func VLANParent(ifindex int) (int, error) {
	v, ok, err := portVLAN(ifindex)
	if err != nil || !ok {
		return ifindex, err
	}
	return v.parent, nil
}

// setVLAN records ifindex as a VLAN port (ok) with ifaces entry val, or
// not, in vlans and the trunk entries of the parents. d.egressMu must be
// held.
func (d *Datapath) setVLAN(ifindex int, v vlanPort, ok bool, val fwdIface) error {
	old, had := d.vlans[ifindex]
	if had && (!ok || old != v) {
		if err := d.objs.Vlans.Delete(vlanKey(old)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("map vlans: delete VLAN %d on ifindex %d: %w", old.vid, old.parent, err)
		}
		delete(d.vlans, ifindex)
		if err := d.syncTrunk(old.parent); err != nil {
			return err
		}
	}
	if !ok {
		return nil
	}
	if err := d.objs.Vlans.Put(vlanKey(v), &fwdVlanVal{Ifindex: uint32(ifindex), Port: val}); err != nil {
		return fmt.Errorf("map vlans: set VLAN %d on ifindex %d: %w", v.vid, v.parent, err)
	}
	d.vlans[ifindex] = v
	return d.syncTrunk(v.parent)
}

func vlanKey(v vlanPort) *fwdVlanKey {
	return &fwdVlanKey{Ifindex: uint32(v.parent), Vid: uint32(v.vid)}
}

// syncTrunk writes the ifaces entry of a VLAN ports' parent that is no
// router port itself: flagged IFACE_F_TRUNK while it has VLAN ports or
// XDP on it (a parent without an entry would be forwarded from unchecked,
// as a port not set yet). A router port keeps its own entry. d.egressMu
// must be held.
func (d *Datapath) syncTrunk(parent int) error {
	if _, ok := d.ports[parent]; ok {
		return nil
	}
	need := false
	for _, v := range d.vlans {
		need = need || v.parent == parent
	}
	k := uint32(parent)
	if need {
		if err := d.objs.Ifaces.Put(k, &fwdIface{Flags: uint8(fwdIfaceFlagsIFACE_F_TRUNK)}); err != nil {
			return fmt.Errorf("map ifaces: set VLAN parent %d: %w", parent, err)
		}
		return nil
	}
	d.mu.Lock()
	_, attached := d.links[parent]
	d.mu.Unlock()
	if attached {
		return nil // until Detach
	}
	if err := d.objs.Ifaces.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map ifaces: delete VLAN parent %d: %w", parent, err)
	}
	return nil
}

// dropTrunk deletes the trunk entry of a parent XDP was detached from, if
// it has no VLAN port left.
func (d *Datapath) dropTrunk(parent int) error {
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	return d.syncTrunk(parent)
}

// takeOverVLANs reads the VLAN ports back from pinned maps.
func (d *Datapath) takeOverVLANs() error {
	var (
		k fwdVlanKey
		v fwdVlanVal
	)
	it := d.objs.Vlans.Iterate()
	for it.Next(&k, &v) {
		d.vlans[int(v.Ifindex)] = vlanPort{parent: int(k.Ifindex), vid: uint16(k.Vid)}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("map vlans: iterate: %w", err)
	}
	return nil
}

// ifaceVal is the ifaces entry of router port ifx. d.egressMu must be
// held.
func (d *Datapath) ifaceVal(ifx int, p egressPort) fwdIface {
	return fwdIface{Mac: p.mac, Mtu: p.mtu, Urpf: uint8(d.urpf[ifx]), RuleClass: d.ruleClass[ifx], Vid: p.vid}
}

// putIface rewrites the ifaces entry of router port ifx, and a VLAN
// port's copy in vlans. d.egressMu must be held.
func (d *Datapath) putIface(ifx int, p egressPort) error {
	v := d.ifaceVal(ifx, p)
	if err := d.objs.Ifaces.Put(uint32(ifx), &v); err != nil {
		return fmt.Errorf("map ifaces: ifindex %d: %w", ifx, err)
	}
	if vp, ok := d.vlans[ifx]; ok {
		if err := d.objs.Vlans.Put(vlanKey(vp), &fwdVlanVal{Ifindex: uint32(ifx), Port: v}); err != nil {
			return fmt.Errorf("map vlans: VLAN %d on ifindex %d: %w", vp.vid, vp.parent, err)
		}
	}
	return nil
}
