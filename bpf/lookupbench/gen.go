// Package lookupbench drives per-packet benchmarks of XDP forwarders with
// BPF_PROG_TEST_RUN over many destinations: Driver rewrites the frame's
// destination from a list before every repeat and tail-calls the program
// under test, so that one long test run measures lookups of random
// destinations (cold caches, as in real traffic) instead of one destination
// that stays cache-hot.
//
// The generated driver_x86_bpfel.go and .o are committed; regenerate with
// `go generate ./bpf/lookupbench/` after changing driver.c.
package lookupbench

//go:generate go tool bpf2go -target amd64 driver driver.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall
