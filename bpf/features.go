package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// XDPFeatures is a device's XDP feature set as the kernel reports it
// (enum netdev_xdp_act in include/uapi/linux/netdev.h).
type XDPFeatures uint64

// XDP feature flags.
const (
	XDPBasic     XDPFeatures = 1 << 0 // NETDEV_XDP_ACT_BASIC: native XDP, PASS/DROP/TX
	XDPRedirect  XDPFeatures = 1 << 1 // NETDEV_XDP_ACT_REDIRECT: native XDP may redirect
	XDPNdoXmit   XDPFeatures = 1 << 2 // NETDEV_XDP_ACT_NDO_XMIT: can transmit redirected frames
	XDPZeroCopy  XDPFeatures = 1 << 3 // NETDEV_XDP_ACT_XSK_ZEROCOPY
	XDPHWOffload XDPFeatures = 1 << 4 // NETDEV_XDP_ACT_HW_OFFLOAD
	XDPRxSG      XDPFeatures = 1 << 5 // NETDEV_XDP_ACT_RX_SG
	XDPNdoXmitSG XDPFeatures = 1 << 6 // NETDEV_XDP_ACT_NDO_XMIT_SG
)

// The netdev genetlink family (include/uapi/linux/netdev.h).
const (
	netdevFamily          = "netdev"
	netdevVersion         = 1
	netdevCmdDevGet       = 1 // NETDEV_CMD_DEV_GET
	netdevADevIfindex     = 1 // NETDEV_A_DEV_IFINDEX
	netdevADevXDPFeatures = 3 // NETDEV_A_DEV_XDP_FEATURES
)

// ErrNoFeatureQuery means the kernel has no netdev generic netlink family
// (before Linux 6.3): XDP features cannot be queried.
var ErrNoFeatureQuery = errors.New("kernel cannot report XDP features (no netdev genetlink family)")

// QueryXDPFeatures asks the kernel (netdev genetlink family, NETDEV_CMD_DEV_GET)
// for the XDP features of ifindex, resolved in the network namespace of the
// calling OS thread. The set can change: a veth can transmit redirected
// frames (XDPNdoXmit) only while its peer has an XDP program or GRO on.
func QueryXDPFeatures(ifindex int) (XDPFeatures, error) {
	fam, err := netlink.GenlFamilyGet(netdevFamily)
	if errors.Is(err, unix.ENOENT) {
		return 0, fmt.Errorf("query XDP features of ifindex %d: %w", ifindex, ErrNoFeatureQuery)
	}
	if err != nil {
		return 0, fmt.Errorf("query XDP features of ifindex %d: genetlink family %s: %w", ifindex, netdevFamily, err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_REQUEST)
	req.AddData(genlHeader{netdevCmdDevGet, netdevVersion})
	req.AddData(nl.NewRtAttr(netdevADevIfindex, nl.Uint32Attr(uint32(ifindex))))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return 0, fmt.Errorf("query XDP features of ifindex %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return 0, fmt.Errorf("query XDP features of ifindex %d: parse reply: %w", ifindex, err)
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevADevXDPFeatures && len(a.Value) == 8 {
				return XDPFeatures(binary.NativeEndian.Uint64(a.Value)), nil
			}
		}
	}
	return 0, fmt.Errorf("query XDP features of ifindex %d: no NETDEV_A_DEV_XDP_FEATURES in the reply", ifindex)
}

// genlHeader is struct genlmsghdr. (nl.Genlmsg serializes 4 bytes from a
// 2-byte struct: its reserved field is garbage, which the kernel rejects
// with EINVAL.)
type genlHeader [4]byte

func (h genlHeader) Len() int          { return len(h) }
func (h genlHeader) Serialize() []byte { return h[:] }

var xdpFeatureNames = []string{"basic", "redirect", "ndo_xmit", "xsk_zerocopy", "hw_offload", "rx_sg", "ndo_xmit_sg"}

// String lists the flags, e.g. "basic|redirect|rx_sg", or "none".
func (f XDPFeatures) String() string {
	var names []string
	for i, n := range xdpFeatureNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := f &^ (1<<len(xdpFeatureNames) - 1); rest != 0 {
		names = append(names, fmt.Sprintf("%#x", uint64(rest)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// redirectCheck returns why frames redirected into ifindex would be lost,
// or "" if it can transmit them; an error if there is no such device. A redirect into a device without
// ndo_xdp_xmit (a bridge, or any driver without native XDP: what "auto"
// attaches in generic mode) is counted as a redirect and then dropped by
// the kernel; a port that is not a target passes its packets to the
// kernel (egress_not_xdp), which forwards them.
func (d *Datapath) redirectCheck(ifindex int) (string, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("ifindex %d: %w", ifindex, err)
	}
	// A veth always has ndo_xdp_xmit; it reports NDO_XMIT only while its
	// peer has GRO or an XDP program, which can change at any time
	// without a message to us (the lab sets it on the hosts' ends).
	if l.Type() == "veth" {
		return "", nil
	}
	f, err := QueryXDPFeatures(ifindex)
	if err == nil {
		if f&XDPNdoXmit != 0 {
			return "", nil
		}
		return fmt.Sprintf("%s cannot transmit redirected frames (XDP features: %s)", l.Type(), f), nil
	}
	// Without the query, only a native attach shows driver XDP support.
	if mode, ok := d.AttachedMode(ifindex); ok && mode == ModeNative {
		return "", nil
	}
	return fmt.Sprintf("not attached in native mode, and %v", err), nil
}

// RedirectTarget reports whether XDP redirects packets routed out of
// ifindex (it is in tx_ports), and if not, why: those packets are passed
// to the kernel (egress_not_xdp). SetInterface decides it.
func (d *Datapath) RedirectTarget(ifindex int) (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	why, ok := d.targets[ifindex]
	if !ok {
		return false, "not a router port"
	}
	return why == "", why
}
