// Command xdprouterctl inspects a running xdprouterd: routes, the XDP
// decision for an address, next hops, neighbors, counters and status. It
// finds the daemon's API address in the daemon's configuration file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bypass"
	"github.com/xdprouter/xdprouter/config"
	xsync "github.com/xdprouter/xdprouter/sync"
)

const usage = `usage: xdprouterctl [--config FILE] [--api ADDR] [--json] COMMAND [ARG]

commands:
  status           interfaces, BGP peers, routes per sink, pending changes,
                   kernel policy XDP bypasses
  routes [PREFIX]  routes (all, or those overlapping PREFIX or ADDRESS)
  lookup ADDR [--from SRC] [--in PORT] [--proto P] [--sport N] [--dport N] [--tos N]
         [--ttl N] [--size N]
                   what XDP does with a packet to ADDR: the real program
                   run on a synthetic frame (its counters apart), the policy
                   rule, route and next hops behind it, the kernel's own
                   route (ip route get), and any disagreement
  trace [PREFIX] [--from P] [--to P] [--proto P] [--family 4|6] [--sample N]
        [--rate N] [--count N]
                   a sample of live XDP decisions, one line per packet
                   (ingress, 5-tuple, verdict, egress) until interrupted
  top [PREFIX] [--by prefix|nexthop] [--seconds N] [--len4 N] [--len6 N] ...
                   busiest destination prefixes or next hops over a few
                   seconds, from a trace sample (estimates)
  nexthops         next-hop groups and their members
  neighbors        neighbor entries XDP forwards with
  stats [--watch [--interval D] [--count N]]
                   XDP counters by action and reason; --watch: per-second
                   rates, refreshed every D (1s) until interrupted
  filters          filter rules in XDP order (config, then Flowspec) with
                   their counters, and Flowspec rules not in force, why
  completion bash|zsh
                   print a shell completion script
  version          version and commit of xdprouterctl and of the daemon
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xdprouterctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	path := fs.String("config", config.DefaultPath, "the daemon's configuration `file`")
	addr := fs.String("api", "", "daemon API `address` (default: api.metrics-listen of the config)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "completion" {
		return completion(rest, stdout, stderr)
	}
	c, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "xdprouterctl: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if len(rest) < c.minArgs || len(rest) > c.maxArgs {
		fmt.Fprintf(stderr, "xdprouterctl %s: wrong number of arguments\n%s", cmd, usage)
		return 2
	}
	if *addr == "" {
		cfg, err := config.Load(*path)
		switch {
		case err == nil:
			*addr = cfg.API.MetricsListen
		case cmd != "version": // version prints the CLI's without a daemon
			fmt.Fprintf(stderr, "xdprouterctl: %v\n(use --config FILE or --api ADDR)\n", err)
			return 2
		}
	}
	if w, err := watchFor(cmd, rest); err != nil {
		fmt.Fprintf(stderr, "xdprouterctl %s: %v\n", cmd, err)
		return 2
	} else if w != nil {
		if err := w.run(ctx, *addr, stdout, *asJSON); err != nil {
			fmt.Fprintf(stderr, "xdprouterctl %s: %v\n", cmd, err)
			return 1
		}
		return 0
	}
	if ok, err := streamFor(ctx, cmd, *addr, rest, stdout, *asJSON); ok {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "xdprouterctl %s: %v\n", cmd, err)
			return 2
		}
		if err != nil {
			fmt.Fprintf(stderr, "xdprouterctl %s: %v\n", cmd, err)
			return 1
		}
		return 0
	}
	out, err := c.run(ctx, *addr, rest)
	if err != nil {
		fmt.Fprintf(stderr, "xdprouterctl %s: %v\n", cmd, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "xdprouterctl: %v\n", err)
			return 1
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	printText(tw, out)
	tw.Flush()
	return 0
}

type command struct {
	minArgs, maxArgs int
	run              func(ctx context.Context, addr string, args []string) (any, error)
}

var commands = map[string]command{
	"status": {0, 0, func(ctx context.Context, addr string, _ []string) (any, error) {
		var s api.Status
		return &s, api.Get(ctx, addr, "/api/v1/status", nil, &s)
	}},
	"routes": {0, 1, func(ctx context.Context, addr string, args []string) (any, error) {
		q := url.Values{}
		if len(args) == 1 {
			if _, err := api.ParsePrefix(args[0]); err != nil {
				return nil, err
			}
			q.Set("prefix", args[0])
		}
		var rs []xsync.RouteInfo
		return rs, api.Get(ctx, addr, "/api/v1/routes", q, &rs)
	}},
	"lookup": {1, 13, func(ctx context.Context, addr string, args []string) (any, error) {
		if _, err := netip.ParseAddr(args[0]); err != nil {
			return nil, fmt.Errorf("%q is not an IP address", args[0])
		}
		q, err := lookupQuery(args)
		if err != nil {
			return nil, err
		}
		var d api.Explain
		return &d, api.Get(ctx, addr, "/api/v1/lookup", q, &d)
	}},
	"nexthops": {0, 0, func(ctx context.Context, addr string, _ []string) (any, error) {
		var gs []xsync.GroupInfo
		return gs, api.Get(ctx, addr, "/api/v1/nexthops", nil, &gs)
	}},
	"neighbors": {0, 0, func(ctx context.Context, addr string, _ []string) (any, error) {
		var ns []api.Neighbor
		return ns, api.Get(ctx, addr, "/api/v1/neighbors", nil, &ns)
	}},
	"stats": {0, 5, func(ctx context.Context, addr string, _ []string) (any, error) {
		var ss []bpf.StatCounter
		return ss, api.Get(ctx, addr, "/api/v1/stats", nil, &ss)
	}},
	"filters": {0, 0, func(ctx context.Context, addr string, _ []string) (any, error) {
		var fs []api.Filter
		return fs, api.Get(ctx, addr, "/api/v1/filters", nil, &fs)
	}},
}

func printText(w io.Writer, v any) {
	switch v := v.(type) {
	case interface{ printText(io.Writer) }: // commands in files of their own
		v.printText(w)
	case *api.Status:
		fmt.Fprintln(w, "INTERFACE\tIFINDEX\tXDP\tEGRESS")
		for _, i := range v.Interfaces {
			egress := "xdp"
			if i.NoRedirect != "" {
				egress = "kernel: " + i.NoRedirect
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", i.Name, i.Ifindex, i.Mode, egress)
		}
		fmt.Fprintf(w, "\nLOOKUP\t%s", v.Lookup.Structure)
		if v.Lookup.Fallback != "" {
			fmt.Fprintf(w, " (compiled structure unusable: %s)", v.Lookup.Fallback)
		}
		fmt.Fprintln(w)
		r := v.Routes
		fmt.Fprintf(w, "\nROUTES\tIPV4\tIPV6\nxdp\t%d\t%d\nkernel\t%d\t%d\npending\t%d\t\nfailed\t%d\t\n",
			r.XDP4, r.XDP6, r.FIB4, r.FIB6, r.Pending, r.Failed)
		if r.Stale > 0 {
			fmt.Fprintf(w, "stale\t%d\t(left by the previous instance, not re-learned yet)\n", r.Stale)
		}
		if len(v.Peers) > 0 {
			fmt.Fprintln(w, "\nPEER\tASN\tSTATE\tUPTIME\tRECEIVED\tACCEPTED\tGR\tBFD\tDESCRIPTION")
			for _, p := range v.Peers {
				desc := p.Description
				if p.PeerGroup != "" { // a dynamic neighbor's session
					desc = strings.TrimSpace(desc + " (dynamic, peer-group " + p.PeerGroup + ")")
				}
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", peerName(p), p.ASN, p.State, p.Uptime.Round(1e9), p.Received, p.Accepted,
					grState(p), dash(p.BFD), desc)
			}
		}
		var redirect, pass, drop uint64
		for _, s := range v.Stats {
			switch s.Action {
			case bpf.ActionRedirect:
				redirect += s.Packets
			case bpf.ActionPass:
				pass += s.Packets
			case bpf.ActionDrop:
				drop += s.Packets
			}
		}
		fmt.Fprintf(w, "\nXDP packets: redirect %d, pass %d, drop %d\n", redirect, pass, drop)
		printStations(w, v.RPKI, v.BMP)
		printBypass(w, v.Bypass)
	case []xsync.RouteInfo:
		// The RPKI column only where origin validation is configured.
		rpki := slices.ContainsFunc(v, func(r xsync.RouteInfo) bool { return r.RPKI != "" })
		if rpki {
			fmt.Fprintln(w, "PREFIX\tSOURCE\tKIND\tMETRIC\tNEXT HOPS\tXDP\tKERNEL\tRPKI\tNOTE")
		} else {
			fmt.Fprintln(w, "PREFIX\tSOURCE\tKIND\tMETRIC\tNEXT HOPS\tXDP\tKERNEL\tNOTE")
		}
		for _, r := range v {
			nh := strings.Join(r.NextHops, ", ")
			if r.Unresolved {
				nh = "unresolved: " + fmt.Sprint(r.BGPNextHops)
			}
			if r.Shadowed != "" {
				nh += " (shadowed by " + r.Shadowed + ")"
			}
			if len(r.Backup) > 0 {
				nh += " (backup " + strings.Join(r.Backup, ", ") + ")"
			}
			if rpki {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Prefix, r.Source, r.Kind, r.Metric, nh, yes(r.InXDP), kernelCol(r), dash(r.RPKI), note(r))
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Prefix, r.Source, r.Kind, r.Metric, nh, yes(r.InXDP), kernelCol(r), note(r))
		}
	case *api.Explain:
		printExplain(w, v)
	case []xsync.GroupInfo:
		fmt.Fprintln(w, "GROUP\tROUTES\tNEXT HOP\tID\tMAC\tACTIVE")
		for _, g := range v {
			for i, m := range g.Members {
				gid, refs := "", ""
				if i == 0 {
					gid, refs = fmt.Sprint(g.ID), fmt.Sprint(g.Routes)
				}
				active := false
				for _, a := range g.Active {
					active = active || a == m.ID
				}
				mac := m.MAC
				if m.Connected {
					mac = "(destination)"
				} else if mac == "" {
					mac = "(unresolved)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", gid, refs, m.Via, m.ID, mac, yes(active))
			}
		}
	case []api.Neighbor:
		fmt.Fprintln(w, "ADDRESS\tIFINDEX\tMAC")
		for _, n := range v {
			fmt.Fprintf(w, "%s\t%d\t%s\n", n.Addr, n.Ifindex, n.MAC)
		}
	case []bpf.StatCounter:
		fmt.Fprintln(w, "ACTION\tREASON\tPACKETS\tBYTES")
		for _, s := range v {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", s.Action, s.Reason, s.Packets, s.Bytes)
		}
	case []api.Filter:
		fmt.Fprintln(w, "#\tNAME\tORIGIN\tMATCH\tACTION\tPACKETS\tBYTES\tDROPPED")
		n := 0
		for _, f := range v {
			if !f.InForce {
				continue
			}
			n++
			origin := f.Origin
			if f.Peer != "" {
				origin += " " + f.Peer
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", n, f.Name, origin, f.Match, f.Action, f.Packets, f.Bytes, f.Dropped)
		}
		first := true
		for _, f := range v {
			if f.InForce {
				continue
			}
			if first {
				fmt.Fprintln(w, "\nNOT IN FORCE\tPEER\tREASON")
				first = false
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", f.Name, f.Peer, f.Reason)
		}
	}
}

// printStations lists the RPKI caches and BMP stations.
func printStations(w io.Writer, rpki []bgp.RPKIStatus, bmp []bgp.BMPStatus) {
	if len(rpki) > 0 {
		fmt.Fprintln(w, "\nRPKI CACHE\tSESSION\tSERIAL\tVRPS IPV4\tVRPS IPV6")
		for _, r := range rpki {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\n", netip.AddrPortFrom(r.Address, r.Port), upDown(r.Up), r.Serial, r.VRPs4, r.VRPs6)
		}
	}
	if len(bmp) > 0 {
		fmt.Fprintln(w, "\nBMP STATION\tSESSION")
		for _, b := range bmp {
			fmt.Fprintf(w, "%s\t%s\n", netip.AddrPortFrom(b.Address, b.Port), upDown(b.Up))
		}
	}
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// printBypass lists the kernel policy XDP does not apply, then what to do
// about each kind.
func printBypass(w io.Writer, fs []bypass.Finding) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nnot honoured by XDP (packets it forwards skip these):")
	var hints []string
	for _, f := range fs {
		fmt.Fprintf(w, "  %s\t%s\n", f.Kind, f.Detail)
		if h := f.Remedy(); !slices.Contains(hints, h) {
			hints = append(hints, h)
		}
	}
	for _, h := range hints {
		fmt.Fprintf(w, "  -> %s\n", h)
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// note says why a route is not forwarded as BGP chose it.
func note(r xsync.RouteInfo) string {
	switch {
	case r.Error != "":
		return r.Error
	case r.Refused:
		return "XDP maps full: passed to the kernel"
	}
	return ""
}

func kernelCol(r xsync.RouteInfo) string {
	if r.Source == "kernel" || r.Source == "local" {
		return "(own)"
	}
	return yes(r.InKernel)
}

// grState sums up a peer's graceful restart for status: "restarting"
// (its routes are kept, stale), "syncing" (we restarted and wait for its
// End-of-RIB), "yes" (negotiated), "-".
// peerName is a peer's address, or for an unnumbered neighbor without a
// peer yet its interface.
func peerName(p bgp.PeerStatus) string {
	if !p.Address.IsValid() {
		return p.Interface
	}
	return p.Address.String()
}

func grState(p bgp.PeerStatus) string {
	switch {
	case p.PeerRestarting:
		return "restarting"
	case p.LocalRestarting:
		return "syncing"
	case p.GracefulRestart:
		return "yes"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lookupQuery turns `ADDR [--from SRC] [--in PORT] ...` into the API's
// query; the daemon checks the values.
func lookupQuery(args []string) (url.Values, error) {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := map[string]*string{}
	for _, k := range api.FlowKeys {
		vals[k] = fs.String(k, "", "")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, fmt.Errorf("%w (flags: --%s)", err, strings.Join(api.FlowKeys, ", --"))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected %q (flags: --%s)", fs.Arg(0), strings.Join(api.FlowKeys, ", --"))
	}
	q := url.Values{"addr": {args[0]}}
	for k, v := range vals {
		if *v != "" {
			q.Set(k, *v)
		}
	}
	return q, nil
}
