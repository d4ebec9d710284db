package bypass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nf_tables over netlink directly: github.com/google/nftables (v0.3.0)
// does not decode a chain's hook devices, and fails a whole rule listing on
// an expression it cannot decode; all this needs is chain hooks and rule
// counts, so it reads the two attributes it needs and ignores the rest.

const (
	nftaHookDevs   = 4 // NFTA_HOOK_DEVS, not in x/sys
	nftaDeviceName = 1 // NFTA_DEVICE_NAME
	nfInetIngress  = 5 // NF_INET_INGRESS (inet family, since Linux 5.10)
	nfDrop         = 0 // NF_DROP as a chain policy
)

// nftChain is a base chain as the kernel lists it.
type nftChain struct {
	Family   uint8
	Table    string
	Name     string
	Hook     uint32
	Priority int32
	Type     string
	Drop     bool     // policy drop
	Devices  []string // netdev/inet ingress
	Rules    int
}

func (c *nftChain) addDevice(d string) {
	if !slices.Contains(c.Devices, d) {
		c.Devices = append(c.Devices, d)
	}
}

func familyName(f uint8) string {
	switch f {
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_IPV6:
		return "ip6"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	}
	return fmt.Sprintf("family%d", f)
}

// nftKind says whether XDP bypasses the base chain c and as what; "" when
// it does not concern forwarded packets (input, output, postrouting...).
// ports are the router's ports.
func nftKind(c nftChain, ports []string) string {
	ipFamily := c.Family == unix.NFPROTO_INET || c.Family == unix.NFPROTO_IPV4 || c.Family == unix.NFPROTO_IPV6
	switch {
	case ipFamily && c.Hook == unix.NF_INET_FORWARD:
		if isIPTablesNFT(c) {
			return KindIPTForward
		}
		return KindNFTForward
	case ipFamily && c.Hook == unix.NF_INET_PRE_ROUTING:
		return KindNFTPrerouting
	case (c.Family == unix.NFPROTO_NETDEV && c.Hook == unix.NF_NETDEV_INGRESS) ||
		(c.Family == unix.NFPROTO_INET && c.Hook == nfInetIngress):
		for _, d := range c.Devices {
			if slices.Contains(ports, d) {
				return KindNFTIngress
			}
		}
	}
	return ""
}

// isIPTablesNFT recognizes the built-in chains iptables-nft creates.
func isIPTablesNFT(c nftChain) bool {
	if c.Family != unix.NFPROTO_IPV4 && c.Family != unix.NFPROTO_IPV6 {
		return false
	}
	switch c.Table {
	case "filter", "mangle", "security", "raw", "nat":
		return c.Name == strings.ToUpper(c.Name)
	}
	return false
}

// nftFinding describes a chain nftKind picked; ok is false for a chain
// with neither rules nor a drop policy (it changes nothing).
func nftFinding(kind string, c nftChain) (Finding, bool) {
	n := c.Rules
	if c.Drop {
		n++
	}
	if n == 0 {
		return Finding{}, false
	}
	hook := map[uint32]string{unix.NF_INET_FORWARD: "forward", unix.NF_INET_PRE_ROUTING: "prerouting"}[c.Hook]
	if kind == KindNFTIngress {
		hook = "ingress"
	}
	var what string
	if kind == KindIPTForward || (kind == KindNFTPrerouting && isIPTablesNFT(c)) {
		tool := "iptables"
		if c.Family == unix.NFPROTO_IPV6 {
			tool = "ip6tables"
		}
		what = fmt.Sprintf("%s (nf_tables) table %s chain %s (", tool, c.Table, c.Name)
	} else {
		what = fmt.Sprintf("nftables chain %s %s %s (hook %s", familyName(c.Family), c.Table, c.Name, hook)
		if kind == KindNFTIngress {
			what += " on " + strings.Join(c.Devices, ", ")
		}
		what += ", "
	}
	if c.Drop {
		what += "policy drop, "
	}
	what += plural(c.Rules, "rule") + ")"
	return Finding{Kind: kind, Detail: what, Count: n}, true
}

// checkNFTables lists the base chains, counts the rules of those XDP
// bypasses, and reports the ones that do something. A kernel without
// nf_tables has nothing to report.
func checkNFTables(ports []string) ([]Finding, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) {
			return nil, nil
		}
		return nil, fmt.Errorf("nftables: %w", err)
	}
	defer c.Close()
	// The chains and their rules from one ruleset generation: a change in
	// between (or an interrupted dump) starts over.
	var lastErr error
	for range 5 {
		fs, err := nftOnce(c, ports)
		if errors.Is(err, errNFTUnsupported) {
			return nil, nil
		}
		if !errors.Is(err, errNFTChanged) {
			return fs, err
		}
		lastErr = err
	}
	return nil, lastErr
}

var (
	errNFTChanged     = errors.New("nftables: ruleset changed while reading it")
	errNFTUnsupported = errors.New("nftables: not supported by the kernel")
)

func nftOnce(c *netlink.Conn, ports []string) ([]Finding, error) {
	gen, err := nftGen(c)
	if err != nil {
		return nil, err
	}
	msgs, err := nftDump(c, unix.NFT_MSG_GETCHAIN, unix.AF_UNSPEC, nil)
	if err != nil {
		return nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	var out []Finding
	for _, m := range msgs {
		ch, base, err := parseChain(m.Data)
		if err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		if !base {
			continue
		}
		kind := nftKind(ch, ports)
		if kind == "" {
			continue
		}
		if ch.Rules, err = nftRules(c, ch); err != nil {
			return nil, err
		}
		if f, ok := nftFinding(kind, ch); ok {
			out = append(out, f)
		}
	}
	if after, err := nftGen(c); err != nil {
		return nil, err
	} else if after != gen {
		return nil, errNFTChanged
	}
	return out, nil
}

func nftRequest(msgType uint8, family uint8, attrs []netlink.Attribute, dump bool) (netlink.Message, error) {
	data := []byte{family, unix.NFNETLINK_V0, 0, 0}
	if len(attrs) > 0 {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return netlink.Message{}, err
		}
		data = append(data, b...)
	}
	flags := netlink.Request
	if dump {
		flags |= netlink.Dump
	}
	return netlink.Message{Header: netlink.Header{
		Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | uint16(msgType)),
		Flags: flags,
	}, Data: data}, nil
}

func nftDump(c *netlink.Conn, msgType uint8, family uint8, attrs []netlink.Attribute) ([]netlink.Message, error) {
	req, err := nftRequest(msgType, family, attrs, true)
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(req)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) {
			return nil, errNFTUnsupported
		}
		return nil, err
	}
	for _, m := range msgs {
		if m.Header.Flags&netlink.DumpInterrupted != 0 {
			return nil, errNFTChanged
		}
	}
	return msgs, nil
}

// nftGen reads the ruleset generation, which every change increments.
func nftGen(c *netlink.Conn) (uint32, error) {
	req, err := nftRequest(unix.NFT_MSG_GETGEN, unix.AF_UNSPEC, nil, false)
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(req)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) {
			return 0, errNFTUnsupported
		}
		return 0, fmt.Errorf("nftables: generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
		if err := ad.Err(); err != nil {
			return 0, err
		}
	}
	return 0, errors.New("nftables: no generation in reply")
}

// nftRules counts the rules of chain ch (the dump is filtered by table and
// chain; the count checks both again, for kernels that do not filter).
func nftRules(c *netlink.Conn, ch nftChain) (int, error) {
	msgs, err := nftDump(c, unix.NFT_MSG_GETRULE, ch.Family, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: append([]byte(ch.Table), 0)},
		{Type: unix.NFTA_RULE_CHAIN, Data: append([]byte(ch.Name), 0)},
	})
	if err != nil {
		return 0, fmt.Errorf("nftables: rules of %s %s %s: %w", familyName(ch.Family), ch.Table, ch.Name, err)
	}
	n := 0
	for _, m := range msgs {
		fam, table, chain, err := parseRule(m.Data)
		if err != nil {
			return 0, fmt.Errorf("nftables: %w", err)
		}
		if fam == ch.Family && table == ch.Table && chain == ch.Name {
			n++
		}
	}
	return n, nil
}

// parseChain decodes a NEWCHAIN message body (nfgenmsg + attributes); base
// is false for a chain without a hook (reached only by jumps).
func parseChain(b []byte) (c nftChain, base bool, err error) {
	if len(b) < 4 {
		return c, false, errors.New("short chain message")
	}
	c.Family = b[0]
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return c, false, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CHAIN_TABLE:
			c.Table = ad.String()
		case unix.NFTA_CHAIN_NAME:
			c.Name = ad.String()
		case unix.NFTA_CHAIN_TYPE:
			c.Type = ad.String()
		case unix.NFTA_CHAIN_POLICY:
			c.Drop = ad.Uint32() == nfDrop
		case unix.NFTA_CHAIN_HOOK:
			base = true
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				nad.ByteOrder = binary.BigEndian
				for nad.Next() {
					switch nad.Type() {
					case unix.NFTA_HOOK_HOOKNUM:
						c.Hook = nad.Uint32()
					case unix.NFTA_HOOK_PRIORITY:
						c.Priority = int32(nad.Uint32())
					case unix.NFTA_HOOK_DEV: // also in NFTA_HOOK_DEVS on newer kernels
						c.addDevice(nad.String())
					case nftaHookDevs:
						nad.Nested(func(dad *netlink.AttributeDecoder) error {
							for dad.Next() {
								if dad.Type() == nftaDeviceName {
									c.addDevice(dad.String())
								}
							}
							return nil
						})
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return c, false, fmt.Errorf("chain %s: %w", c.Name, err)
	}
	return c, base, nil
}

// parseRule decodes the family, table and chain of a NEWRULE message body.
func parseRule(b []byte) (family uint8, table, chain string, err error) {
	if len(b) < 4 {
		return 0, "", "", errors.New("short rule message")
	}
	ad, err := netlink.NewAttributeDecoder(b[4:])
	if err != nil {
		return 0, "", "", err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			chain = ad.String()
		}
	}
	return b[0], table, chain, ad.Err()
}
