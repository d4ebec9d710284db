package daemon

import (
	"bufio"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/xdprouter/xdprouter/config"
)

// setMemory applies [runtime]: the GC percent and the soft memory limit
// (by default 80% of what the machine or the service's cgroup has, so
// that the collector works harder before the kernel's OOM killer does).
// GOGC and GOMEMLIMIT in the environment win, as the Go runtime's own.
func setMemory(r config.Runtime, log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(r.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(r.MemoryLimit) << 20
	if limit == 0 {
		avail := available()
		if avail == 0 {
			return
		}
		limit = avail / 10 * 8
	}
	debug.SetMemoryLimit(limit)
	log.Debug("Go memory limit", "MiB", limit>>20, "gc-percent", r.GCPercent)
}

// available is the memory this process may use: the machine's, or its
// cgroup's limit if lower (0 if neither is known).
func available() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				total = kb << 10
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if cg, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && cg > 0 && (total == 0 || cg < total) {
			total = cg // "max" (no limit) does not parse
		}
	}
	return total
}
