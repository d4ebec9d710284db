//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * driver: the front end of the per-packet lookup benchmarks. Run with
 * BPF_PROG_TEST_RUN and a large repeat count on one frame, it writes the
 * next destination of `dsts` (a shuffled list, walked in order: the
 * harness's own memory accesses are sequential, the lookups' random) into
 * the frame, restores the Ethernet header and TTL / hop limit (the kernel
 * reuses the buffer across repeats, and the forwarders rewrite the MACs
 * and decrement the TTL), then tail-calls the program
 * under test in `target`. `pass` is a target that does nothing: driving it
 * measures the harness alone.
 *
 * The IPv4 header checksum is left stale: neither forwarder verifies it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "GPL";

#define RESTORED_TTL 64

struct dst {
	__u8 addr[16]; /* IPv4: the first 4 bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set by the loader: a power of two */
	__type(key, __u32);
	__type(value, struct dst);
} dsts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target SEC(".maps");

/* Set by the loader (spec.Variables): max_entries of dsts - 1. */
volatile const __u32 dst_mask = 0;

/*
 * The frame's Ethernet header, set by the loader. Writable: clang folds
 * copies out of a `volatile const` array to zeros.
 */
struct ethhdr eth_tmpl;

/* Next index into dsts. BPF_PROG_TEST_RUN runs on one CPU: no atomics. */
__u32 cursor;

SEC("xdp")
int drive(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 i = cursor++ & dst_mask;
	struct dst *d = bpf_map_lookup_elem(&dsts, &i);

	if (!d || (void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, &eth_tmpl, sizeof(*eth));
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(&iph->daddr, d->addr, 4);
		iph->ttl = RESTORED_TTL;
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(&ip6->daddr, d->addr, 16);
		ip6->hop_limit = RESTORED_TTL;
	}
	bpf_tail_call(ctx, &target, 0);
	return XDP_ABORTED; /* no target */
}

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
