package bypass

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// checkRPFilter reports the ports whose effective rp_filter — the larger
// of net.ipv4.conf.all.rp_filter and net.ipv4.conf.PORT.rp_filter — is not
// 0. procSys is /proc/sys, which shows the namespace of the reading thread.
// A port that does not exist (yet) is skipped: the daemon reports it.
func checkRPFilter(procSys string, ports []string) ([]Finding, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	read := func(dev string) (int, error) {
		b, err := os.ReadFile(filepath.Join(procSys, "net/ipv4/conf", dev, "rp_filter"))
		if err != nil {
			return 0, err
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, fmt.Errorf("rp_filter of %s: %w", dev, err)
		}
		return v, nil
	}
	all, err := read("all")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // no IPv4
		}
		return nil, err
	}
	var out []Finding
	var errs []error
	for _, p := range ports {
		v, err := read(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if eff := max(all, v); eff != 0 {
			out = append(out, Finding{Kind: KindRPFilter, Count: 1,
				Detail: fmt.Sprintf("rp_filter=%d (%s) on %s (all=%d, %s=%d)", eff, rpMode(eff), p, all, p, v)})
		}
	}
	return out, errors.Join(errs...)
}

func rpMode(v int) string {
	switch v {
	case 1:
		return "strict"
	case 2:
		return "loose"
	}
	return "unknown mode"
}
