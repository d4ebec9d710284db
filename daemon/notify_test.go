package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fakeManager is a service manager's notify socket.
func fakeManager(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, name
}

func recv(t *testing.T, c *net.UnixConn, within time.Duration) (string, bool) {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(within))
	n, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", false
		}
		t.Fatal(err)
	}
	return string(buf[:n]), true
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNotifierFromEnv(t *testing.T) {
	pid := 4242
	tests := []struct {
		name string
		env  map[string]string
		want notifier
	}{
		{"not under systemd", nil, notifier{}},
		{"notify, no watchdog", map[string]string{"NOTIFY_SOCKET": "/run/n"}, notifier{addr: "/run/n"}},
		{"watchdog", map[string]string{"NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "60000000"}, notifier{addr: "@n", watchdog: time.Minute}},
		{"watchdog for us", map[string]string{"NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": strconv.Itoa(pid)}, notifier{addr: "@n", watchdog: 2 * time.Second}},
		{"watchdog for another process", map[string]string{"NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, notifier{addr: "@n"}},
		{"bad WATCHDOG_USEC", map[string]string{"NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "soon"}, notifier{addr: "@n"}},
	}
	for _, tc := range tests {
		if got := notifierFromEnv(env(tc.env), pid); *got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, *got, tc.want)
		}
	}
}

func TestNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@xdprouter-test-" + strconv.Itoa(int(time.Now().UnixNano()))} {
		c, addr := fakeManager(t, name)
		n := notifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": addr}), 1)
		if err := n.notify("READY=1"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if msg, ok := recv(t, c, 5*time.Second); !ok || msg != "READY=1" {
			t.Errorf("%s: got %q, %v", name, msg, ok)
		}
	}
	// Not under systemd: nothing to do, no error.
	if err := notifierFromEnv(env(nil), 1).notify("READY=1"); err != nil {
		t.Error(err)
	}
	var nilN *notifier
	if err := nilN.notify("READY=1"); err != nil {
		t.Error(err)
	}
	// A socket that went away is an error the caller logs.
	gone := notifierFromEnv(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")}), 1)
	if err := gone.notify("READY=1"); err == nil {
		t.Error("no error for a missing socket")
	}
}

// TestWatchdog: pings while the worker is alive, none while it is not,
// and again once it is; none after ctx ends.
func TestWatchdog(t *testing.T) {
	c, addr := fakeManager(t, filepath.Join(t.TempDir(), "notify"))
	n := &notifier{addr: addr, watchdog: 100 * time.Millisecond}
	var stuck atomic.Bool
	var maxAge atomic.Int64
	alive := func(age time.Duration) error {
		maxAge.Store(int64(age))
		if stuck.Load() {
			return errors.New("stuck")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.runWatchdog(ctx, alive, slog.New(slog.DiscardHandler)); close(done) }()
	for range 3 {
		if msg, ok := recv(t, c, 2*time.Second); !ok || msg != "WATCHDOG=1" {
			t.Fatalf("ping: %q, %v", msg, ok)
		}
	}
	if got := time.Duration(maxAge.Load()); got != 2*time.Second {
		t.Errorf("alive asked with max age %s, want 2s (at least the idle worker's turn)", got)
	}
	stuck.Store(true)
	// Drain a ping that may have been sent before the switch.
	for {
		if _, ok := recv(t, c, 300*time.Millisecond); !ok {
			break
		}
	}
	if msg, ok := recv(t, c, 500*time.Millisecond); ok {
		t.Errorf("pinged %q while the worker is stuck", msg)
	}
	stuck.Store(false)
	if msg, ok := recv(t, c, 2*time.Second); !ok || msg != "WATCHDOG=1" {
		t.Errorf("no ping after recovery: %q, %v", msg, ok)
	}
	cancel()
	<-done
	for {
		if _, ok := recv(t, c, 50*time.Millisecond); !ok {
			break
		}
	}
	if msg, ok := recv(t, c, 300*time.Millisecond); ok {
		t.Errorf("pinged %q after the end", msg)
	}
	// No watchdog configured: returns at once.
	(&notifier{addr: addr}).runWatchdog(context.Background(), alive, slog.New(slog.DiscardHandler))
}
