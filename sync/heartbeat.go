package sync

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// heartbeat is the worker's sign of life for a watchdog (systemd's
// WatchdogSec): Run ticks it at every turn of its loop (at least once a
// second: the retry ticker) and after every applied chunk.
type heartbeat struct {
	last    atomic.Int64 // unix nanoseconds of the last tick
	running atomic.Bool
}

func (h *heartbeat) tick() { h.last.Store(time.Now().UnixNano()) }

// ErrNotRunning is Alive's answer before Run starts and after it returns.
var ErrNotRunning = errors.New("sync worker not running")

// Alive returns nil if Run is running and its worker completed a step (a
// loop turn or an applied chunk of at most Options.Chunk routes) within
// maxAge; otherwise why not.
func (s *Syncer) Alive(maxAge time.Duration) error {
	if !s.beat.running.Load() {
		return ErrNotRunning
	}
	if age := time.Since(time.Unix(0, s.beat.last.Load())); age > maxAge {
		return fmt.Errorf("sync worker stuck: no progress for %s", age.Round(time.Millisecond))
	}
	return nil
}
