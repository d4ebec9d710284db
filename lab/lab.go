// Package lab builds throwaway network labs in network namespaces — hosts,
// a router running xdprouterd, upstream BGP peers — for the integration
// tests and the `make lab` demo. It never touches the root namespace's
// interfaces, and Close removes everything it created.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// Lab is a set of namespaces (by role: "h1", "r", ...) and processes.
type Lab struct {
	id    string
	mu    sync.Mutex
	ns    map[string]string // role -> namespace name
	order []string
	procs []*Proc
	dirs  []string // temporary directories to remove
}

// New starts an empty lab whose namespaces are named PREFIX-ID-ROLE.
func New(prefix string) *Lab {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &Lab{id: prefix + "-" + hex.EncodeToString(b), ns: map[string]string{}}
}

// NS returns the namespace name of role.
func (l *Lab) NS(role string) string { return l.ns[role] }

// AddNS creates the namespace for role with lo up.
func (l *Lab) AddNS(role string) error {
	name := l.id + "-" + role
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	l.mu.Lock()
	l.ns[role] = name
	l.order = append(l.order, role)
	l.mu.Unlock()
	return l.Run(role, "ip", "link", "set", "lo", "up")
}

// Link connects role a's interface aIf to role b's interface bIf with a
// veth pair and brings both up.
func (l *Lab) Link(a, aIf, b, bIf string) error {
	tmp := "v" + l.id[len(l.id)-6:] + aIf
	if len(tmp) > 15 {
		tmp = tmp[:15]
	}
	tmpB := tmp[:len(tmp)-1] + "p"
	if out, err := exec.Command("ip", "link", "add", tmp, "netns", l.ns[a], "type", "veth", "peer", "name", tmpB, "netns", l.ns[b]).CombinedOutput(); err != nil {
		return fmt.Errorf("veth %s:%s-%s:%s: %v: %s", a, aIf, b, bIf, err, out)
	}
	return errors.Join(
		l.Run(a, "ip", "link", "set", tmp, "name", aIf),
		l.Run(b, "ip", "link", "set", tmpB, "name", bIf),
		l.Run(a, "ip", "link", "set", aIf, "up"),
		l.Run(b, "ip", "link", "set", bIf, "up"),
	)
}

// Run runs a command inside role's namespace and fails with its output.
func (l *Lab) Run(role string, args ...string) error {
	_, err := l.Output(role, args...)
	return err
}

// Output runs a command inside role's namespace and returns its stdout.
func (l *Lab) Output(role string, args ...string) (string, error) {
	ns := l.ns[role]
	if ns == "" {
		return "", fmt.Errorf("lab: no namespace for role %q", role)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %s: %v: %s%s", role, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Sysctl sets a sysctl inside role's namespace.
func (l *Lab) Sysctl(role, key, value string) error {
	return l.Run(role, "sysctl", "-qw", key+"="+value)
}

// Proc is a process started in a namespace.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Out  *syncBuffer
	done chan struct{}
	err  error
}

// Start runs a long-lived process in role's namespace; Close stops it.
func (l *Lab) Start(role, name string, args ...string) (*Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns[role]}, args...)...)
	p := &Proc{Name: name, Cmd: cmd, Out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Out, p.Out
	// Own process group: a Ctrl-C meant for the lab does not hit its
	// processes, which Close stops in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Exited reports whether the process ended (and how).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills. It returns the
// process's exit error (nil for a clean exit after SIGTERM).
func (p *Proc) Stop(timeout time.Duration) error {
	if exited, err := p.Exited(); exited {
		return err
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.Name, timeout)
	}
}

// Close stops every process (by PID) and deletes every namespace, in
// reverse order of creation, reporting all failures.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i := len(l.procs) - 1; i >= 0; i-- {
		if err := l.procs[i].Stop(10 * time.Second); err != nil && !isSignalExit(err) {
			errs = append(errs, err)
		}
	}
	l.procs = nil
	for i := len(l.order) - 1; i >= 0; i-- {
		name := l.ns[l.order[i]]
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", name, err, out))
		}
	}
	l.order, l.ns = nil, map[string]string{}
	for _, d := range l.dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	l.dirs = nil
	return errors.Join(errs...)
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// Do runs fn on an OS thread switched into role's namespace (sockets fn
// creates stay in that namespace). The thread is discarded afterwards.
func (l *Lab) Do(role string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		returned := false
		defer func() {
			if !returned { // fn called runtime.Goexit (t.Fatal): do not hang
				errc <- errors.New("lab.Do: function did not return")
			}
		}()
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		target, err := netns.GetFromName(l.ns[role])
		if err != nil {
			returned = true
			errc <- fmt.Errorf("open namespace of %s: %w", role, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			returned = true
			errc <- fmt.Errorf("enter namespace of %s: %w", role, err)
			return
		}
		err = fn()
		returned = true
		errc <- err
	}()
	return <-errc
}

// Poll calls f every 50 ms until it returns nil or the deadline passes; it
// returns f's last error then.
func Poll(ctx context.Context, timeout time.Duration, f func() error) error {
	return PollEvery(ctx, timeout, 50*time.Millisecond, f)
}

// PollEvery is Poll with a given interval.
func PollEvery(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing while a test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Root reports whether the lab can run here (root with network namespaces).
func Root() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, XDP)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs iproute2 (ip)")
	}
	return nil
}

// Ctl runs `xdprouterctl --json ARGS` (binary ctl) in role's namespace
// against the API at 127.0.0.1:MetricsPort and decodes the output into out.
func (l *Lab) Ctl(role, ctl string, out any, args ...string) error {
	full := append([]string{ctl, "--api", "127.0.0.1:" + MetricsPort, "--json"}, args...)
	stdout, err := l.Output(role, full...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		return fmt.Errorf("xdprouterctl %s: %v: %s", strings.Join(args, " "), err, stdout)
	}
	return nil
}
