//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * fiblookup: the baseline forwarder of the lookup benchmarks. It forwards
 * like xdp_fwd does (parse Ethernet and IPv4/IPv6, look the destination
 * up, rewrite both MACs, decrement TTL / hop limit, redirect) but asks the
 * kernel's FIB and neighbor table with bpf_fib_lookup, as the kernel's
 * samples/bpf/xdp_fwd_kern.c does. Anything it does not forward is passed.
 * A per-CPU counter per verdict lets a benchmark check that every frame
 * was forwarded.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPV6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)

enum verdict {
	VERDICT_FORWARDED,
	VERDICT_PASSED,
	VERDICT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VERDICT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int count(__u32 v, int action)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &v);

	if (n)
		(*n)++;
	return action;
}

SEC("xdp")
int xdp_fib_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup p = {};
	struct iphdr *iph = (void *)(eth + 1);
	struct ipv6hdr *ip6 = (void *)(eth + 1);

	if ((void *)(eth + 1) > data_end)
		return count(VERDICT_PASSED, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		if ((void *)(iph + 1) > data_end || iph->ihl != 5 || iph->ttl <= 1)
			return count(VERDICT_PASSED, XDP_PASS);
		p.family = AF_INET;
		p.tos = iph->tos;
		p.l4_protocol = iph->protocol;
		p.tot_len = bpf_ntohs(iph->tot_len);
		p.ipv4_src = iph->saddr;
		p.ipv4_dst = iph->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return count(VERDICT_PASSED, XDP_PASS);
		p.family = AF_INET6;
		p.flowinfo = *(__be32 *)ip6 & IPV6_FLOWINFO_MASK;
		p.l4_protocol = ip6->nexthdr;
		p.tot_len = bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(p.ipv6_src, &ip6->saddr, sizeof(p.ipv6_src));
		__builtin_memcpy(p.ipv6_dst, &ip6->daddr, sizeof(p.ipv6_dst));
	} else {
		return count(VERDICT_PASSED, XDP_PASS);
	}
	p.ifindex = ctx->ingress_ifindex;

	if (bpf_fib_lookup(ctx, &p, sizeof(p), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return count(VERDICT_PASSED, XDP_PASS);

	/* Bounds checked again: the verifier loses them across the branches. */
	if (p.family == AF_INET) {
		if ((void *)(iph + 1) > data_end)
			return count(VERDICT_PASSED, XDP_PASS);
		/* ip_decrease_ttl(): incremental checksum update (RFC 1624). */
		__u32 check = iph->check;
		check += bpf_htons(0x0100);
		iph->check = (__u16)(check + (check >= 0xFFFF));
		iph->ttl--;
	} else {
		if ((void *)(ip6 + 1) > data_end)
			return count(VERDICT_PASSED, XDP_PASS);
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
	return count(VERDICT_FORWARDED, bpf_redirect(p.ifindex, 0));
}
