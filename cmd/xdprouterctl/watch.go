package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
)

// watcher is `stats --watch`: the XDP counters' per-second rates by action
// and reason, refreshed every interval until interrupted (or count
// reports).
type watcher struct {
	interval time.Duration
	count    int // reports to print; 0: until interrupted
}

// watchFor returns the streaming form of cmd with args, nil if there is
// none (the command prints one answer), or an error for bad flags.
func watchFor(cmd string, args []string) (*watcher, error) {
	if cmd != "stats" || len(args) == 0 {
		return nil, nil
	}
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	on := fs.Bool("watch", false, "")
	w := &watcher{}
	fs.DurationVar(&w.interval, "interval", time.Second, "")
	fs.IntVar(&w.count, "count", 0, "")
	const flags = "(flags: --watch, --interval DURATION, --count N)"
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w %s", err, flags)
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected %q %s", fs.Arg(0), flags)
	case !*on:
		return nil, errors.New("--interval and --count need --watch")
	case w.interval < 10*time.Millisecond:
		return nil, fmt.Errorf("--interval %s: at least 10ms", w.interval)
	case w.count < 0:
		return nil, fmt.Errorf("--count %d: must not be negative", w.count)
	}
	return w, nil
}

// Rate is one counter's rate over an interval.
type Rate struct {
	Action  string  `json:"action"`
	Reason  string  `json:"reason,omitempty"`
	Packets float64 `json:"packets_per_second"`
	Bits    float64 `json:"bits_per_second"`
}

// Rates is one report of `stats --watch --json` (one JSON object a line).
type Rates struct {
	Time     time.Time `json:"time"`
	Interval float64   `json:"interval_seconds"`
	Rates    []Rate    `json:"rates"`
}

// rates computes the per-second rates between two readings dt apart, in
// the order of cur (the daemon's, enum stat's). Counters that never
// counted are left out; a counter that went backwards (the daemon
// restarted with fresh maps) counts from zero.
func rates(prev, cur []bpf.StatCounter, dt time.Duration) []Rate {
	type key struct{ action, reason string }
	old := make(map[key]bpf.StatCounter, len(prev))
	for _, s := range prev {
		old[key{s.Action, s.Reason}] = s
	}
	secs := dt.Seconds()
	out := []Rate{}
	for _, s := range cur {
		if s.Packets == 0 {
			continue
		}
		p := old[key{s.Action, s.Reason}]
		if p.Packets > s.Packets || p.Bytes > s.Bytes {
			p = bpf.StatCounter{}
		}
		out = append(out, Rate{Action: s.Action, Reason: s.Reason,
			Packets: float64(s.Packets-p.Packets) / secs, Bits: 8 * float64(s.Bytes-p.Bytes) / secs})
	}
	return out
}

// run prints a report every interval until ctx ends or count reports are
// out. On a terminal each report replaces the previous one.
func (w *watcher) run(ctx context.Context, addr string, stdout io.Writer, asJSON bool) error {
	read := func() ([]bpf.StatCounter, time.Time, error) {
		var ss []bpf.StatCounter
		err := api.Get(ctx, addr, "/api/v1/stats", nil, &ss)
		return ss, time.Now(), err
	}
	prev, at, err := read()
	if err != nil {
		return err
	}
	redraw := isTerminal(stdout) && !asJSON
	enc := json.NewEncoder(stdout)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for n := 0; w.count == 0 || n < w.count; n++ {
		select {
		case <-ctx.Done():
			return nil // interrupted: not an error
		case <-t.C:
		}
		cur, now, err := read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r := Rates{Time: now, Interval: now.Sub(at).Seconds(), Rates: rates(prev, cur, now.Sub(at))}
		prev, at = cur, now
		if asJSON {
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue
		}
		if redraw {
			fmt.Fprint(stdout, "\033[H\033[2J")
		} else if n > 0 {
			fmt.Fprintln(stdout)
		}
		printRates(stdout, r)
	}
	return nil
}

// printRates prints one report as a table with a total line.
func printRates(w io.Writer, r Rates) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s  (every %.3gs; Ctrl-C ends)\n", r.Time.Format("15:04:05"), r.Interval)
	fmt.Fprintln(tw, "ACTION\tREASON\tPACKETS/S\tBITS/S\t")
	var pkts, bits float64
	for _, x := range r.Rates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", x.Action, dash(x.Reason), human(x.Packets), human(x.Bits))
		pkts += x.Packets
		bits += x.Bits
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t\n", human(pkts), human(bits))
	tw.Flush()
}

// human formats a rate with an SI prefix: 950, 12.3k, 4.56M, 1.2G.
func human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// isTerminal reports whether w is a terminal (reports then redraw the
// screen).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
