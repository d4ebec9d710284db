//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * trafficgen: a packet generator and a packet sink for forwarding benchmarks.
 *
 * `generate` is run with BPF_PROG_TEST_RUN in live-frames mode on the
 * sending host's port and returns XDP_TX, so every repeat puts one frame on
 * the wire. The page pool of a live-frames run recycles frames that a
 * router downstream has rewritten (MACs, TTL, checksum), so the program
 * writes the whole header from `tmpl` on every run, then picks the
 * destination:
 *   GEN_FIXED   one flow to the template's destination;
 *   GEN_RANDOM  a random host in one of n_routes /24 prefixes (and a random
 *               source port), prefix i being PREFIX_BASE + ((i * PREFIX_STEP)
 *               mod 2^20) << 8: spread over 64.0.0.0/4, same formula as
 *               Prefix() in trafficgen.go.
 * With `spoof` set, the source is a random address of src_base/src_host_mask
 * (and the UDP source port random) too, except every legit_every-th frame
 * (0: none), which has legit_saddr and the template's port: a legitimate
 * flow mixed into a flood of spoofed sources (in Random mode the source port
 * is random for every frame).
 *
 * `sink` counts and drops IPv4 frames (a per-CPU counter, no atomics) and
 * passes everything else to the host's kernel, so that the host answers ARP
 * and neighbor discovery like a real one: the router then resolves and
 * re-confirms its neighbor entry for the host the ordinary way (a sink that
 * drops ARP leaves the router's entry INCOMPLETE or FAILED as soon as
 * anything asks the kernel to re-resolve it).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "trafficgen.h"

char __license[] SEC("license") = "GPL";

/* Set by the loader (spec.Variables) before load. */
volatile const __u32 mode = GEN_FIXED;
volatile const __u32 n_routes = 1;
volatile const __u32 spoof = 0;
volatile const __u32 src_base = 0;	/* network byte order */
volatile const __u32 src_host_mask = 0; /* host byte order */
volatile const __u32 legit_every = 0;
volatile const __u32 legit_saddr = 0; /* network byte order */

/* Frames since the last legitimate one (one generator runs on one CPU). */
__u32 since_legit;

/*
 * Ethernet + IPv4 + UDP header with daddr = 0 and the IPv4 checksum
 * computed for that. Writable on purpose: clang folds copies out of a
 * `volatile const` array to zeros.
 */
__u64 tmpl[HDR_WORDS];

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} received SEC(".maps");

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int generate(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 *w = data;

	if (data + HDR_LEN > data_end)
		return XDP_ABORTED;
	/* 42 header bytes: five words and a half-word. */
	w[0] = tmpl[0];
	w[1] = tmpl[1];
	w[2] = tmpl[2];
	w[3] = tmpl[3];
	w[4] = tmpl[4];
	*(__u16 *)(data + 40) = *(__u16 *)((void *)tmpl + 40);

	if (mode == GEN_FIXED && !spoof)
		return XDP_TX;

	/* The template's checksum covers zero addresses where they vary. */
	__u16 *check = data + IP_CHECK_OFF;
	__u32 sum = (__u16)~*check;

	if (spoof) {
		__u32 saddr = legit_saddr;
		if (legit_every && ++since_legit >= legit_every) {
			since_legit = 0;
		} else {
			__u32 s = bpf_get_prandom_u32();
			saddr = src_base | bpf_htonl(s & src_host_mask);
			*(__u16 *)(data + UDP_SPORT_OFF) = (__u16)(s >> 17) | 0x400;
		}
		sum += (saddr & 0xffff) + (saddr >> 16); /* in memory order, as the header */
		*(__u32 *)(data + IP_SADDR_OFF) = saddr;
	}

	if (mode == GEN_RANDOM) {
		__u32 r = bpf_get_prandom_u32();
		__u32 n = n_routes;
		if (n == 0)
			return XDP_ABORTED;
		__u32 slot = ((r % n) * PREFIX_STEP) & PREFIX_MASK;
		__u32 host = 1 + ((r >> 24) & 0x7f);
		__u32 daddr = bpf_htonl(PREFIX_BASE | slot << 8 | host);

		sum += (daddr & 0xffff) + (daddr >> 16);
		*(__u32 *)(data + IP_DADDR_OFF) = daddr;
		*(__u16 *)(data + UDP_SPORT_OFF) = (__u16)(r >> 8) | 0x400;
	}
	*check = csum_fold(sum);
	return XDP_TX;
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS; /* ARP, IPv6 (neighbor discovery): the host's kernel */

	__u32 key = 0;
	__u64 *c = bpf_map_lookup_elem(&received, &key);

	if (c)
		(*c)++;
	return XDP_DROP;
}
