// Package bypass finds the kernel policy that packets XDP forwards never
// meet: netfilter chains on the forward and prerouting hooks (nftables,
// iptables-nft, legacy iptables), netdev ingress chains on the router's
// ports, and rp_filter. XDP redirects
// a frame from one port's driver to another's before any of these run, so
// the router has to say so instead of silently ignoring them.
//
// Check reads the current network namespace once; a Watcher checks again
// whenever netfilter or a netconf setting changes (and every
// few seconds, for legacy iptables, which notifies nobody).
//
// ip rules are not bypassed: XDP evaluates the kernel's rules itself and
// passes packets a rule it cannot evaluate may match to the kernel (see
// bpf/rules.go).
package bypass

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// Kinds of Finding; also the values of the kind label of
// xdprouter_bypassed_policy.
const (
	KindNFTForward    = "nftables-forward"    // nftables chain on the forward hook (ip, ip6, inet)
	KindNFTPrerouting = "nftables-prerouting" // nftables (or iptables-nft) chain on the prerouting hook
	KindNFTIngress    = "nftables-ingress"    // netdev/inet ingress chain on a router port
	KindIPTForward    = "iptables-forward"    // iptables-nft FORWARD chain (tables filter, mangle, security)
	KindIPTLegacy     = "iptables-legacy"     // legacy (x_tables) iptables/ip6tables FORWARD or PREROUTING
	KindRPFilter      = "rp-filter"           // net.ipv4.conf.{all,PORT}.rp_filter non-zero on a port
)

// Kinds lists every kind, in the order they are reported.
var Kinds = []string{KindNFTForward, KindNFTPrerouting, KindNFTIngress, KindIPTForward, KindIPTLegacy, KindRPFilter}

// A Finding is one piece of kernel policy XDP does not apply.
type Finding struct {
	Kind string `json:"kind"`
	// Detail names the object, e.g. "nftables chain inet filter forward
	// (hook forward, 3 rules)".
	Detail string `json:"detail"`
	// Count is the number of rules of a chain (a drop policy counts as
	// one), or 1 for a port with rp_filter.
	Count int `json:"count"`
}

const filterHint = `express the policy as [[filter]] rules, or pass the traffic to the kernel with a filter action "pass"`

// Remedy says what to do instead.
func (f Finding) Remedy() string {
	switch f.Kind {
	case KindRPFilter:
		return `XDP does no reverse-path check of its own unless asked: set [dataplane] urpf = "strict" (rp_filter=1) or "loose" (rp_filter=2)`
	}
	return filterHint
}

// Message is the log line: what is bypassed and what to do.
func (f Finding) Message() string {
	return f.Detail + " is not applied to packets XDP forwards: " + f.Remedy()
}

// Check reports what XDP bypasses in the current network namespace; ports
// are the router's ports (for rp_filter and netdev ingress chains). What
// could be read is returned even with an error.
func Check(ports []string) ([]Finding, error) {
	var out []Finding
	var errs []error
	for _, c := range []func() ([]Finding, error){
		func() ([]Finding, error) { return checkNFTables(ports) },
		func() ([]Finding, error) { return checkLegacy("/proc/thread-self/net", runSave) },
		func() ([]Finding, error) { return checkRPFilter("/proc/sys", ports) },
	} {
		fs, err := c()
		out = append(out, fs...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	sortFindings(out)
	return out, errors.Join(errs...)
}

// CheckAt is Check in the network namespace of the file descriptor ns (0:
// the caller's), run on an OS thread switched into it and discarded after.
func CheckAt(ns int, ports []string) ([]Finding, error) {
	if ns == 0 {
		return Check(ports)
	}
	type result struct {
		fs  []Finding
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		fs, err := Check(ports)
		done <- result{fs, err}
	}()
	r := <-done
	return r.fs, r.err
}

func sortFindings(fs []Finding) {
	rank := func(k string) int {
		if i := slices.Index(Kinds, k); i >= 0 {
			return i
		}
		return len(Kinds)
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(rank(a.Kind), rank(b.Kind)), cmp.Compare(a.Detail, b.Detail))
	})
}

// Totals sums Count by kind, with every kind present (0 when none).
func Totals(fs []Finding) map[string]int {
	t := make(map[string]int, len(Kinds))
	for _, k := range Kinds {
		t[k] = 0
	}
	for _, f := range fs {
		t[f.Kind] += f.Count
	}
	return t
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}
