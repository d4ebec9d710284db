package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
)

// trace and top stream from /api/v1/trace; lookup prints api.Explain.

func init() {
	noop := func(context.Context, string, []string) (any, error) { return nil, nil }
	commands["trace"] = command{0, 20, noop}
	commands["top"] = command{0, 20, noop}
}

// usageError is a bad command line (exit 2).
type usageError struct{ error }

// streamFor runs the streaming commands (trace, top); ok false for others.
func streamFor(ctx context.Context, cmd, addr string, args []string, stdout io.Writer, asJSON bool) (ok bool, err error) {
	switch cmd {
	case "trace":
		return true, runTrace(ctx, addr, args, stdout, asJSON)
	case "top":
		return true, runTop(ctx, addr, args, stdout, asJSON)
	}
	return false, nil
}

// traceFlags are the filter flags of trace and top.
func traceFlags(fs *flag.FlagSet) map[string]*string {
	m := map[string]*string{}
	for _, k := range []string{"from", "to", "proto", "family", "sample", "rate"} {
		m[k] = fs.String(k, "", "")
	}
	return m
}

// traceQuery parses `[FILTER] [--from P] [--to P] [--proto P] ...`: a
// lone positional argument is the destination prefix (as --to).
func traceQuery(fs *flag.FlagSet, vals map[string]*string, args []string) (url.Values, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{fmt.Errorf("%w (flags: --from, --to, --proto, --family, --sample, --rate, --count, --seconds)", err)}
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	q := url.Values{}
	for k, v := range vals {
		if *v != "" {
			q.Set(k, *v)
		}
	}
	switch len(pos) {
	case 0:
	case 1:
		if q.Get("to") != "" {
			return nil, usageError{fmt.Errorf("%q and --to both given", pos[0])}
		}
		q.Set("to", pos[0])
	default:
		return nil, usageError{fmt.Errorf("unexpected %q", pos[1])}
	}
	if _, err := api.ParseTrace(q); err != nil {
		return nil, usageError{err}
	}
	return q, nil
}

// stream reads /api/v1/trace until ctx ends, calling fn per event.
func stream(ctx context.Context, addr string, q url.Values, fn func(api.TraceEvent) bool) error {
	u := url.URL{Scheme: "http", Host: addr, Path: "/api/v1/trace", RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("is xdprouterd running? %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if sc.Scan() && json.Unmarshal(sc.Bytes(), &e) == nil && e.Error != "" {
			return fmt.Errorf("xdprouterd: %s", e.Error)
		}
		return fmt.Errorf("xdprouterd: %s", resp.Status)
	}
	for sc.Scan() {
		var e api.TraceEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		if e.Action == "" {
			var x struct{ Error string }
			if json.Unmarshal(sc.Bytes(), &x) == nil && x.Error != "" {
				return fmt.Errorf("xdprouterd: %s", x.Error)
			}
		}
		if !fn(e) {
			return nil
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt)
}

// runTrace is `trace [PREFIX] [--from P] [--to P] [--proto P] [--family
// 4|6] [--sample N] [--rate N] [--count N]`: one line per sampled live
// decision until interrupted or count lines are out.
func runTrace(ctx context.Context, addr string, args []string, stdout io.Writer, asJSON bool) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	vals := traceFlags(fs)
	count := fs.Int("count", 0, "")
	q, err := traceQuery(fs, vals, args)
	if err != nil {
		return err
	}
	if *count < 0 {
		return usageError{errors.New("--count must not be negative")}
	}
	ctx, stop := interruptible(ctx)
	defer stop()
	enc := json.NewEncoder(stdout)
	n := 0
	if !asJSON {
		fmt.Fprintln(stdout, "TIME             IN       SRC -> DST                                   PROTO  VERDICT                     OUT")
	}
	return stream(ctx, addr, q, func(e api.TraceEvent) bool {
		if asJSON {
			_ = enc.Encode(e)
		} else {
			fmt.Fprintln(stdout, traceLine(e))
		}
		n++
		return *count == 0 || n < *count
	})
}

func hostPort(a netip.Addr, port uint16, ports bool) string {
	if !a.IsValid() {
		return "-"
	}
	if !ports {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// traceLine is one event: time, ingress, 5-tuple, verdict, egress.
func traceLine(e api.TraceEvent) string {
	ports := e.Proto == 6 || e.Proto == 17 || e.Proto == 132
	in := cmp.Or(e.In, ifname(e.Ingress))
	verdict := e.Action
	if e.Reason != "" {
		verdict += "/" + e.Reason
	}
	out := "-"
	if e.Action == bpf.ActionRedirect {
		out = fmt.Sprintf("%s -> %s", cmp.Or(e.Out, ifname(e.Egress)), e.DstMAC)
	}
	flow := hostPort(e.Src, e.Sport, ports) + " -> " + hostPort(e.Dst, e.Dport, ports)
	return fmt.Sprintf("%s  %-7s  %-44s  %-5s  %-26s  %s", e.Time.Format("15:04:05.000000"), in, flow, protoName(e.Proto), verdict, out)
}

func ifname(i int) string {
	if i == 0 {
		return "-"
	}
	return "if" + strconv.Itoa(i)
}

// TopEntry is one line of `top`: a destination prefix or next hop and
// its share of the sampled packets.
type TopEntry struct {
	Key     string  `json:"key"`
	Sampled int     `json:"sampled"`
	Share   float64 `json:"share"`
	// EstPPS estimates packets per second (sampled x sample / seconds);
	// an underestimate when the rate cap cut the sample.
	EstPPS float64 `json:"est_pps"`
}

// Top is the answer of `top --json`.
type Top struct {
	By      string     `json:"by"`
	Seconds float64    `json:"seconds"`
	Sample  int        `json:"sample"`
	Events  int        `json:"events"`
	Entries []TopEntry `json:"entries"`
}

// runTop is `top [PREFIX] [--by prefix|nexthop] [--seconds N] [--len4 N]
// [--len6 N] [--sample N] [--rate N] ...`: tracing for a few seconds,
// the busiest destination prefixes (the destinations cut to len4/len6
// bits) or next hops (egress port and MAC; the verdict for packets not
// forwarded), from the sample.
func runTop(ctx context.Context, addr string, args []string, stdout io.Writer, asJSON bool) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	vals := traceFlags(fs)
	by := fs.String("by", "prefix", "")
	secs := fs.Float64("seconds", 5, "")
	len4 := fs.Int("len4", 24, "")
	len6 := fs.Int("len6", 48, "")
	n := fs.Int("n", 20, "")
	q, err := traceQuery(fs, vals, args)
	if err != nil {
		return err
	}
	if *by != "prefix" && *by != "nexthop" {
		return usageError{fmt.Errorf("--by %q (want prefix or nexthop)", *by)}
	}
	if *secs <= 0 || *len4 < 0 || *len4 > 32 || *len6 < 0 || *len6 > 128 {
		return usageError{errors.New("--seconds must be positive, --len4 0-32, --len6 0-128")}
	}
	if q.Get("sample") == "" {
		q.Set("sample", "16")
	}
	if q.Get("rate") == "" {
		q.Set("rate", "20000")
	}
	sample, _ := strconv.Atoi(q.Get("sample"))
	sample = max(sample, 1)
	ctx, stop := interruptible(ctx)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(*secs*float64(time.Second)))
	defer cancel()
	start := time.Now()
	counts := map[string]int{}
	total := 0
	err = stream(ctx, addr, q, func(e api.TraceEvent) bool {
		key := ""
		switch {
		case *by == "nexthop" && e.Action == bpf.ActionRedirect:
			key = fmt.Sprintf("%s %s", cmp.Or(e.Out, ifname(e.Egress)), e.DstMAC)
		case *by == "nexthop":
			key = "(" + e.Action + "/" + e.Reason + ")"
		case e.Dst.IsValid():
			bits := *len4
			if !e.Dst.Is4() {
				bits = *len6
			}
			p, _ := e.Dst.Prefix(bits)
			key = p.String()
		default:
			key = "(not IP)"
		}
		counts[key]++
		total++
		return true
	})
	if err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	t := Top{By: *by, Seconds: el, Sample: sample, Events: total}
	for k, c := range counts {
		t.Entries = append(t.Entries, TopEntry{Key: k, Sampled: c, Share: float64(c) / float64(max(total, 1)),
			EstPPS: float64(c*sample) / max(el, 1e-9)})
	}
	slices.SortFunc(t.Entries, func(a, b TopEntry) int {
		return cmp.Or(cmp.Compare(b.Sampled, a.Sampled), strings.Compare(a.Key, b.Key))
	})
	if len(t.Entries) > *n {
		t.Entries = t.Entries[:*n]
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	fmt.Fprintf(stdout, "sampled: %d events in %.1fs, 1 in %d packets traced (estimates assume the rate cap was not hit)\n", total, el, sample)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	head := "PREFIX"
	if *by == "nexthop" {
		head = "NEXT HOP"
	}
	fmt.Fprintf(tw, "%s\tSAMPLED\tSHARE\tEST PPS\n", head)
	for _, e := range t.Entries {
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.0f\n", e.Key, e.Sampled, 100*e.Share, e.EstPPS)
	}
	return tw.Flush()
}

// printExplain prints lookup's answer: the program's verdict first, then
// the model's details, the kernel's answer and the disagreements.
func printExplain(w io.Writer, v *api.Explain) {
	if len(v.Assumed) > 0 {
		fmt.Fprintf(w, "assumed\t%s\n", strings.Join(v.Assumed, ", "))
	}
	if r := v.Program; r != nil {
		verdict := r.Action
		if r.Reason != "" {
			verdict += " " + r.Reason
		}
		fmt.Fprintf(w, "xdp\t%s (the program run on a %d-byte frame)\n", verdict, r.Frame)
		if r.Action == bpf.ActionRedirect {
			tag := ""
			if r.VLAN != 0 {
				tag = fmt.Sprintf("\tvlan %d", r.VLAN) // out of the VLAN port's parent
			}
			fmt.Fprintf(w, "  egress\tifindex %d\t%s -> %s\tttl %d%s\n", r.Egress, r.SrcMAC, r.DstMAC, r.TTL, tag)
		}
	} else if v.ProgramError != "" {
		fmt.Fprintf(w, "xdp\t(not run: %s)\n", v.ProgramError)
	}
	d := v.Decision
	if d.Rule != "" {
		fmt.Fprintf(w, "rule\t%s\n", d.Rule)
	}
	if d.Prefix.IsValid() {
		table := ""
		if d.Table != 0 && d.Table != 254 {
			table = fmt.Sprintf(" table %d", d.Table)
		}
		fmt.Fprintf(w, "prefix\t%s%s (%s, group %d)\n", d.Prefix, table, d.Kind, d.Group)
	}
	fmt.Fprintf(w, "model\t%s %s\n", d.Action, d.Reason)
	for _, c := range d.Candidates {
		fmt.Fprintf(w, "  nexthop %d\tifindex %d\t%s -> %s\t%s %s\n", c.NextHop, c.Ifindex, c.SrcMAC, c.DstMAC, c.Action, c.Reason)
	}
	if k := v.Kernel; k != nil {
		if k.Error != "" {
			fmt.Fprintf(w, "kernel\t%s\n", k.Error)
		} else {
			s := k.Type
			if k.Gateway.IsValid() {
				s += " via " + k.Gateway.String()
			}
			if k.Ifindex != 0 {
				s += fmt.Sprintf(" dev ifindex %d", k.Ifindex)
			}
			fmt.Fprintf(w, "kernel\t%s table %d\n", s, k.Table)
		}
	} else if v.KernelError != "" {
		fmt.Fprintf(w, "kernel\t(not asked: %s)\n", v.KernelError)
	}
	for _, f := range v.Flags {
		fmt.Fprintf(w, "DISAGREE\t%s\n", f)
	}
}
