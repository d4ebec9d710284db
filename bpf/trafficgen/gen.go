// Package trafficgen is a packet generator and a packet sink for
// forwarding benchmarks in network namespaces: Generator sends frames out
// of a port with an XDP program run in BPF_PROG_TEST_RUN live-frames mode
// (millions of packets per second, no pktgen needed), Sink counts and drops
// IPv4 frames arriving on a port with an XDP program and passes the rest
// (ARP, IPv6 neighbor discovery) to the host's kernel.
//
// The generated trafficgen_x86_bpfel.go and .o are committed; regenerate
// with `go generate ./bpf/trafficgen/` after changing trafficgen.c or
// trafficgen.h.
package trafficgen

//go:generate go tool bpf2go -target amd64 trafficgen trafficgen.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall
