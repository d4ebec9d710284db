// Package fiblookup is the baseline of the lookup benchmarks: an XDP
// forwarder as complete as xdprouter's (parse, lookup, MAC rewrite, TTL
// decrement, redirect) that asks the kernel's FIB with bpf_fib_lookup
// instead of walking its own tables. It is not used by xdprouterd.
//
// The generated fiblookup_x86_bpfel.go and .o are committed; regenerate
// with `go generate ./bpf/fiblookup/` after changing fiblookup.c.
package fiblookup

//go:generate go tool bpf2go -target amd64 fiblookup fiblookup.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall
