//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_fwd: IPv4/IPv6 forwarding from eBPF maps filled by the control plane.
 *
 * Anything the fast path does not handle completely (local destinations,
 * TTL expiry, options, extension headers, unresolved neighbors, MTU, ...)
 * is passed to the kernel stack, which does the slow-path work (ICMP errors,
 * ARP/ND, fragmentation). Every outcome is counted in `stats`.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fwd.h"

char __license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DEFAULT_MAX_ROUTES_V4);
	__type(key, struct lpm_v4_key);
	__type(value, struct route_val);
} routes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DEFAULT_MAX_ROUTES_V6);
	__type(key, struct lpm_v6_key);
	__type(value, struct route_val);
} routes_v6 SEC(".maps");

/* The compiled structure, written by Go through memory mappings. */
#define LPM_ARRAY(name, value_type, entries)              \
	struct {                                          \
		__uint(type, BPF_MAP_TYPE_ARRAY);         \
		__uint(map_flags, BPF_F_MMAPABLE);        \
		__uint(max_entries, entries);             \
		__type(key, __u32);                       \
		__type(value, value_type);                \
	} name SEC(".maps")

LPM_ARRAY(lpm_top4, struct lpm_pair, MAX_TABLES << (LPM_TOP_BITS - 1));
LPM_ARRAY(lpm_nodes4, struct lpm_node, DEFAULT_LPM_RECORDS_V4);
LPM_ARRAY(lpm_leaves4, struct lpm_pair, DEFAULT_LPM_LEAVES_V4);
LPM_ARRAY(lpm_top6, struct lpm_pair, MAX_TABLES << (LPM_TOP_BITS - 1));
LPM_ARRAY(lpm_nodes6, struct lpm_node, DEFAULT_LPM_RECORDS_V6);
LPM_ARRAY(lpm_leaves6, struct lpm_pair, DEFAULT_LPM_LEAVES_V6);
/* Source classes of the policy rules, per bank: the same structure. */
LPM_ARRAY(rule_top4, struct lpm_pair, 2 << (LPM_TOP_BITS - 1));
LPM_ARRAY(rule_top6, struct lpm_pair, 2 << (LPM_TOP_BITS - 1));

/*
 * Which structure packets use: 1 the compiled one, 0 the LPM trie (set by
 * Go at load, and at run time if the compiled one runs out of room).
 */
volatile __u32 lookup_compiled = 1;

/*
 * 1 once Go has built the compiled source classes of the rules in force
 * (rule_top4/6); until then, and if they do not fit, the trie rule_src.
 */
volatile __u32 rules_compiled = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct local_bits);
} local_bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct nhg);
} nhgs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_NEXTHOPS);
	__type(key, __u32);
	__type(value, struct nexthop);
} nexthops SEC(".maps");

/*
 * Control-plane only (XDP never reads them): the gateway of each next hop,
 * so that a restarted daemon can read the next hops back as applied state,
 * and the layout version of the pinned maps.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DEFAULT_MAX_NEXTHOPS);
	__type(key, __u32);
	__type(value, struct nh_gateway);
} nh_gateways SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pin_meta);
} meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DEFAULT_MAX_NEIGHBORS);
	__type(key, struct neigh_key);
	__type(value, struct neigh_val);
} neighbors SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DEFAULT_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct iface);
} ifaces SEC(".maps");

/* (parent, VLAN id) -> the VLAN port: see fwd.h (struct vlan_key). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DEFAULT_MAX_VLANS);
	__type(key, struct vlan_key);
	__type(value, struct vlan_val);
} vlans SEC(".maps");

/* Redirect targets: a port's ifindex -> the device frames go out of (a VLAN port's parent). */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, DEFAULT_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT__MAX);
	__type(key, __u32);
	__type(value, struct counter);
} stats SEC(".maps");

/* Filters: see fwd.h. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_meta);
} filter_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FT__SIZE); /* two banks of pairs */
	__type(key, __u32);
	__type(value, struct lpm_pair);
} filter_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2 * FILTER_CLASSES);
	__type(key, __u32);
	__type(value, struct filter_bits);
} filter_bitmaps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * 4 * (FILTER_MAX + 1));
	__type(key, struct filter_key);
	__type(value, __u32);
} filter_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * (DEFAULT_MAX_IFACES + 1));
	__type(key, struct filter_port_key);
	__type(value, __u32);
} filter_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 2 * FILTER_MAX);
	__type(key, __u32);
	__type(value, struct filter_rule);
} filter_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * FILTER_MAX); /* slots of both banks */
	__type(key, __u32);
	__type(value, struct filter_counter);
} filter_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * FILTER_MAX);
	__type(key, __u32);
	__type(value, struct filter_bucket);
} filter_buckets SEC(".maps");

/* Policy rules: see fwd.h. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rule_meta);
} rule_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 2 * MAX_RULES); /* bank, family, rule */
	__type(key, __u32);
	__type(value, struct prule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 2 * RULE_LISTS); /* bank, family, list */
	__type(key, __u32);
	__type(value, struct rule_list);
} rule_lists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * 2 * (MAX_RULES + 1));
	__type(key, struct rule_src_key);
	__type(value, __u32);
} rule_src SEC(".maps");

/* Control plane only: the kernel table id of each slot (0: free). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_TABLES);
	__type(key, __u32);
	__type(value, __u32);
} table_ids SEC(".maps");

/*
 * Families (bit 0 IPv4, bit 1 IPv6) whose rules go beyond the defaults
 * (set by Go after a bank flip): without, XDP looks up the main table only.
 */
volatile __u32 rules_on = 0;

/*
 * Keep the enums in BTF so that bpf2go can export them (-type): enum
 * constants used only in expressions leave no type information behind.
 * The variable lives in .rodata and is never read.
 */
struct enum_anchor {
	enum stat stat;
	enum route_type route_type;
	enum nh_flags nh_flags;
	struct lpm_pair lpm_pair;
	struct lpm_node lpm_node;
	enum urpf_mode urpf_mode;
	enum iface_flags iface_flags;
	struct vlan_key vlan_key;
	struct vlan_val vlan_val;
	enum filter_field filter_field;
	enum filter_table filter_table;
	enum filter_frag filter_frag;
	enum filter_action filter_action;
	enum filter_flags filter_flags;
	enum rule_action rule_action;
	enum rule_flags rule_flags;
	enum rule_verdict rule_verdict;
	struct trace_event trace_event;
};
const volatile struct enum_anchor enum_anchor __attribute__((unused));

#define IPV4_MF 0x2000
#define IPV4_OFFSET 0x1fff

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/* Tracing: see fwd.h (struct trace_cfg). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} trace_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_cfg);
} trace_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_state);
} trace_states SEC(".maps");

/*
 * 1 while someone traces (set by Go, after trace_config). A section of its
 * own: the explain instance (bpf/explain.go) shares .data and .bss with
 * the live program, not this.
 */
volatile __u32 trace_on SEC(".data.trace") = 0;

static __always_inline int masked_match(const __u8 *a, const __u8 *want, const __u8 *mask)
{
	__u8 d = 0;
#pragma unroll
	for (int i = 0; i < 16; i++)
		d |= (a[i] ^ want[i]) & mask[i];
	return d == 0;
}

/*
 * One verdict, while tracing: parse the frame again (as it is now), apply
 * the filter, the sampling and the budget, and write an event. Global:
 * verified once, and out of the inlined fast path.
 */
__noinline int trace_emit(struct xdp_md *ctx, __u32 s, __u32 action, __u32 egress)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct trace_cfg *cfg = bpf_map_lookup_elem(&trace_config, &zero);
	struct trace_state *st = bpf_map_lookup_elem(&trace_states, &zero);

	if (!cfg || !st)
		return 0;
	struct trace_event ev = {};
	ev.ingress = ctx->ingress_ifindex;
	ev.egress = egress;
	ev.len = data_end - data;
	ev.stat = s;
	ev.action = action;
	ev.v6 = 2;
	struct ethhdr *eth = data;
	void *l4 = 0;
	if ((void *)(eth + 1) <= data_end) {
		__builtin_memcpy(ev.dmac, eth->h_dest, 6);
		__builtin_memcpy(ev.smac, eth->h_source, 6);
		__be16 proto = eth->h_proto;
		void *l3 = eth + 1;
		if (proto == bpf_htons(ETH_P_8021Q) && l3 + 4 <= data_end) {
			proto = *(__be16 *)(l3 + 2);
			l3 += 4;
		}
		if (proto == bpf_htons(ETH_P_IP)) {
			struct iphdr *iph = l3;
			if ((void *)(iph + 1) <= data_end) {
				ev.v6 = 0;
				ev.proto = iph->protocol;
				ev.tos = iph->tos;
				ev.ttl = iph->ttl;
				__builtin_memcpy(ev.src, &iph->saddr, 4);
				__builtin_memcpy(ev.dst, &iph->daddr, 4);
				if (!(iph->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET)))
					l4 = (void *)iph + (iph->ihl * 4 & 0x3c);
			}
		} else if (proto == bpf_htons(ETH_P_IPV6)) {
			struct ipv6hdr *ip6 = l3;
			if ((void *)(ip6 + 1) <= data_end) {
				ev.v6 = 1;
				ev.proto = ip6->nexthdr;
				ev.tos = ip6->priority << 4 | ip6->flow_lbl[0] >> 4;
				ev.ttl = ip6->hop_limit;
				__builtin_memcpy(ev.src, &ip6->saddr, 16);
				__builtin_memcpy(ev.dst, &ip6->daddr, 16);
				l4 = ip6 + 1;
			}
		}
	}
	if (l4 && (ev.proto == IPPROTO_TCP || ev.proto == IPPROTO_UDP || ev.proto == IPPROTO_SCTP) &&
	    l4 + 4 <= data_end) {
		ev.sport = bpf_ntohs(*(__be16 *)l4);
		ev.dport = bpf_ntohs(*(__be16 *)(l4 + 2));
	}

	if (cfg->family && (ev.v6 > 1 || cfg->family != (ev.v6 ? 6 : 4)))
		return 0;
	if (cfg->proto && cfg->proto != ev.proto)
		return 0;
	if (!masked_match(ev.src, cfg->src, cfg->src_mask) || !masked_match(ev.dst, cfg->dst, cfg->dst_mask))
		return 0;
	st->seen++;
	if (cfg->sample > 1 && st->seen % cfg->sample)
		return 0;
	ev.ts = bpf_ktime_get_ns();
	__u64 window = ev.ts / 1000000000;
	if (window != st->window) {
		st->window = window;
		st->sent = 0;
	}
	if (cfg->budget && st->sent >= cfg->budget)
		return 0;
	if (bpf_ringbuf_output(&trace_ring, &ev, sizeof(ev), 0)) {
		st->lost++;
		return 0;
	}
	st->sent++;
	return 1;
}

/* Counts the verdict (and traces it, while tracing); egress: the redirect target. */
static __always_inline int count_to(struct xdp_md *ctx, enum stat s, __u64 bytes, int action, __u32 egress)
{
	__u32 key = s;
	struct counter *c = bpf_map_lookup_elem(&stats, &key);

	if (c) {
		/* Per-CPU value: no atomics needed. */
		c->packets++;
		c->bytes += bytes;
	}
	if (trace_on)
		trace_emit(ctx, s, action, egress);
	return action;
}

static __always_inline int count(struct xdp_md *ctx, enum stat s, __u64 bytes, int action)
{
	return count_to(ctx, s, bytes, action, 0);
}

static __always_inline __u32 rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

/* One round of murmur3_32. */
static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rol32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rol32(h, 13);
	return h * 5 + 0xe6546b64;
}

/* murmur3_32 finalizer: every input bit affects every output bit. */
static __always_inline __u32 fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/*
 * The router's ECMP hash seed: random per router (so that tiers of
 * routers hashing the same flows do not polarise), kept in the pinned
 * meta map across restarts. Go sets it before load (bpf/datapath.go).
 */
volatile __u32 hash_seed = 0x9e3779b9;

static __always_inline int has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* Source and destination ports (raw, network order) as one word, or 0. */
static __always_inline __u32 l4_ports(void *l4, void *data_end, __u32 l4_len, __u8 proto)
{
	if (!has_ports(proto) || l4_len < 4 || l4 + 4 > data_end)
		return 0;
	return *(__u32 *)l4;
}

/* Frame-independent part of forwarding: route result → egress. */
struct fwd_ctx {
	struct neigh_key nkey; /* ifindex filled in later; addr = destination */
	__u32 hash;
	__u32 pkt_len; /* L3 length, compared against the egress MTU */
	__u32 egress;  /* out: the redirect target */
	__u32 vid;     /* out: the egress VLAN id, 0 for untagged */
};

/*
 * Next-hop resolution shared by both families. On success sets the redirect
 * target, fills *dmac and *smac and returns -1; otherwise returns the stat
 * to count (the frame is untouched).
 */
static __always_inline int resolve(struct route_val *rt, struct fwd_ctx *fc,
				   __u8 **dmac, __u8 **smac)
{
	__u32 gid = rt->nhg;
	struct nhg *g = bpf_map_lookup_elem(&nhgs, &gid);

	if (!g)
		return STAT_PASS_NO_NEXTHOP;
	__u32 n = g->count;
	if (n == 0 || n > MAX_ECMP)
		return STAT_PASS_NO_NEXTHOP;

	/* O(1) whatever the group size: hash -> bucket -> member slot. */
	__u32 slot = g->bucket[fc->hash & (NHG_BUCKETS - 1)];
	/* clang knows slot < 256 and would drop the mask the verifier needs. */
	asm volatile("" : "+r"(slot));
	__u32 nhid = g->nh[slot & (MAX_ECMP - 1)];

	struct nexthop *nh = bpf_map_lookup_elem(&nexthops, &nhid);
	if (!nh)
		return STAT_PASS_NO_NEIGH;

	if (nh->flags & NH_F_CONNECTED) {
		fc->nkey.ifindex = nh->ifindex;
		struct neigh_val *nv = bpf_map_lookup_elem(&neighbors, &fc->nkey);
		if (!nv)
			return STAT_PASS_NO_NEIGH;
		*dmac = nv->mac;
	} else if (nh->flags & NH_F_RESOLVED) {
		*dmac = nh->dmac;
	} else {
		return STAT_PASS_NO_NEIGH;
	}

	if (!(nh->flags & NH_F_PORT))
		return STAT_PASS_EGRESS;
	if (fc->pkt_len > nh->mtu)
		return STAT_PASS_TOO_BIG;
	/*
	 * Only records the target: nothing is sent unless the program returns
	 * XDP_REDIRECT. Done before the frame is rewritten, so a port missing
	 * from tx_ports passes it to the kernel untouched (one lookup, no
	 * separate check).
	 */
	if (bpf_redirect_map(&tx_ports, nh->ifindex, 0) != XDP_REDIRECT)
		return STAT_PASS_EGRESS;

	*smac = nh->smac;
	fc->egress = nh->ifindex;
	fc->vid = nh->vid;
	return -1;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static __always_inline int route_stat(struct route_val *rt)
{
	switch (rt->type) {
	case ROUTE_UNICAST:
		return -1;
	case ROUTE_BLACKHOLE:
		return STAT_DROP_BLACKHOLE;
	case ROUTE_LOCAL:
		return STAT_PASS_LOCAL;
	case ROUTE_KERNEL:
		return STAT_PASS_KERNEL_ROUTE;
	case ROUTE_THROW: /* in the main table alone: the default table is empty */
		return STAT_PASS_NO_ROUTE;
	default: /* ROUTE_UNREACHABLE and anything unknown: let the kernel decide */
		return STAT_PASS_UNREACHABLE;
	}
}

/*
 * The redirect target is set (resolve): rewrite the MACs, the VLAN tag as
 * the egress port wants it, and send. Whether the frame came tagged is
 * read off the frame (untouched so far but for its IP header), not kept
 * across the whole path: the stack is tight. Popping or pushing a tag only
 * moves the head: the MACs are written anew anyway, and the EtherType
 * behind them stays where it is.
 */
static __always_inline int finish(struct xdp_md *ctx, __u8 *dmac, __u8 *smac,
				  __u64 bytes, struct fwd_ctx *fc)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u32 vid = fc->vid;

	if ((void *)(eth + 1) + 4 > data_end) /* an IP header follows in any case */
		return count(ctx, STAT_ABORTED, bytes, XDP_ABORTED);
	int tagged = eth->h_proto == bpf_htons(ETH_P_8021Q);
	if (tagged != (vid != 0)) {
		if (bpf_xdp_adjust_head(ctx, tagged ? 4 : -4))
			return count(ctx, STAT_ABORTED, bytes, XDP_ABORTED);
		data_end = (void *)(long)ctx->data_end;
		eth = (void *)(long)ctx->data;
		if ((void *)(eth + 1) + 4 > data_end)
			return count(ctx, STAT_ABORTED, bytes, XDP_ABORTED);
	}
	if (vid) {
		eth->h_proto = bpf_htons(ETH_P_8021Q);
		*(__be16 *)(eth + 1) = bpf_htons(vid); /* PCP 0, as the kernel's default egress map */
	}
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return count_to(ctx, STAT_REDIRECT, bytes, XDP_REDIRECT, fc->egress);
}

/* Bits set in x: BPF has no popcount instruction. */
static __always_inline __u64 popcnt64(__u64 x)
{
	x -= (x >> 1) & 0x5555555555555555ULL;
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (x * 0x0101010101010101ULL) >> 56;
}

/*
 * One node of the compiled structure, at slot v: either the next record
 * (returns 0, *e = record index) or the slot's leaf (returns 1,
 * *e = LPM_LEAF | leaf).
 */
static __always_inline int lpm_step(struct lpm_node *n, __u32 v, void *leaves, __u32 *e)
{
	__u64 bit = 1ULL << (v & 63);

	if (n->vector & bit) {
		*e = n->child_base + popcnt64(n->vector & (bit - 1));
		return 0;
	}
	__u32 li = n->leaf_base + popcnt64(n->leafvec & ((bit << 1) - 1)) - 1;
	__u32 k = li >> 1;
	struct lpm_pair *p = bpf_map_lookup_elem(leaves, &k);
	*e = LPM_LEAF | (p ? p->v[li & 1] : 0);
	return 1;
}

/* A leaf into the route value the forwarder uses; 0 for no route. */
static __always_inline int lpm_leaf(__u32 e, struct route_val *rt)
{
	__u32 leaf = e & ~LPM_LEAF;

	if (!(e & LPM_LEAF) || leaf == 0)
		return 0;
	rt->type = (leaf >> LPM_KIND_SHIFT) - 1;
	rt->plen = leaf >> LPM_PLEN_SHIFT;
	rt->nhg = leaf & LPM_GROUP_MASK;
	return 1;
}

static __always_inline int lpm_top(void *top, __u32 t, __u32 *e)
{
	__u32 k = t >> 1;
	struct lpm_pair *p = bpf_map_lookup_elem(top, &k);

	if (!p)
		return 0;
	*e = p->v[t & 1];
	return 1;
}

/*
 * The compiled structure's walk for a (host order) from the top entries at
 * base: 1 with *e the leaf entry (LPM_LEAF | leaf), 0 if a record is out
 * of range.
 */
static __always_inline int lpm_walk_v4(void *top, __u32 base, __u32 a, __u32 *e)
{
	if (!lpm_top(top, base | a >> 14, e))
		return 0;
	/* Nodes cover bits 18-23, 24-29 and 30-31 (plus four zero bits). */
	__u32 chunks[3] = { (a >> 8) & 63, (a >> 2) & 63, (a << 4) & 63 };
	for (int level = 0; level < 3; level++) {
		if (*e & LPM_LEAF)
			break;
		struct lpm_node *n = bpf_map_lookup_elem(&lpm_nodes4, e);
		if (!n)
			return 0;
		if (lpm_step(n, chunks[level], &lpm_leaves4, e))
			break;
	}
	return 1;
}

static __always_inline int lpm_walk_v6(void *top, __u32 base, struct in6_addr *daddr, __u32 *e)
{
	__u64 hi = (__u64)bpf_ntohl(daddr->in6_u.u6_addr32[0]) << 32 | bpf_ntohl(daddr->in6_u.u6_addr32[1]);
	__u64 lo = (__u64)bpf_ntohl(daddr->in6_u.u6_addr32[2]) << 32 | bpf_ntohl(daddr->in6_u.u6_addr32[3]);

	if (!lpm_top(top, base | (__u32)(hi >> 46), e))
		return 0;
	/* 19 nodes of 6 bits from bit 18; the one at bit 60 straddles. */
	for (int level = 0; level < 19; level++) {
		if (*e & LPM_LEAF)
			break;
		struct lpm_node *n = bpf_map_lookup_elem(&lpm_nodes6, e);
		if (!n)
			return 0;
		__u32 off = 18 + 6 * level, v;
		if (off <= 58)
			v = hi >> (58 - off);
		else if (off < 64)
			v = hi << (off - 58) | lo >> (122 - off);
		else if (off <= 122)
			v = lo >> (122 - off);
		else
			v = lo << (off - 122);
		if (lpm_step(n, v & 63, &lpm_leaves6, e))
			break;
	}
	return 1;
}

/* Longest-prefix match of an IPv4 destination in a table slot; 0: no route. */
static __always_inline int route_v4(__u32 slot, __be32 daddr, struct route_val *rt)
{
	slot &= MAX_TABLES - 1;
	if (!lookup_compiled) {
		struct lpm_v4_key key = { .prefixlen = 64, .table = slot, .addr = daddr };
		struct route_val *v = bpf_map_lookup_elem(&routes_v4, &key);
		if (!v)
			return 0;
		*rt = *v;
		return 1;
	}
	__u32 e;
	if (!lpm_walk_v4(&lpm_top4, slot << LPM_TOP_BITS, bpf_ntohl(daddr), &e))
		return 0;
	return lpm_leaf(e, rt);
}

/* Longest-prefix match of an IPv6 destination in a table slot; 0: no route. */
static __always_inline int route_v6(__u32 slot, struct in6_addr *daddr, struct route_val *rt)
{
	slot &= MAX_TABLES - 1;
	if (!lookup_compiled) {
		struct lpm_v6_key key = { .prefixlen = 32 + 128, .table = slot };
		__builtin_memcpy(key.addr, daddr, 16);
		struct route_val *v = bpf_map_lookup_elem(&routes_v6, &key);
		if (!v)
			return 0;
		*rt = *v;
		return 1;
	}
	__u32 e;
	if (!lpm_walk_v6(&lpm_top6, slot << LPM_TOP_BITS, daddr, &e))
		return 0;
	return lpm_leaf(e, rt);
}

/* Trailing zero bits of a non-zero x. */
static __always_inline __u32 ctz64(__u64 x)
{
	return popcnt64((x & -x) - 1);
}

/* The packet fields filters match on (see filter_parse_*). */
struct filter_pkt {
	__u32 dport, sport;         /* 65536: none */
	__u32 icmp_type, icmp_code; /* 256: none */
	__u32 tcp_flags;            /* 256: none */
	__u32 len;
	__u32 ingress;
	__u64 bytes;
	__u8 saddr[16], daddr[16]; /* IPv4: the first 4 bytes */
	__u8 proto, dscp, frag, v6;
};

/* What the filters decided, for the forwarder. */
enum filter_verdict {
	FV_FORWARD = 0, /* no rule stopped it */
	FV_DROP,
	FV_PASS,
	FV_RATE_DROP,
};

static __always_inline __u32 filter_class_at(__u32 bank, __u32 idx)
{
	__u32 i = bank * FT__SIZE + idx, k = i >> 1;
	struct lpm_pair *p = bpf_map_lookup_elem(&filter_class, &k);

	return p ? p->v[i & 1] : 0;
}

static __always_inline struct filter_bits *filter_bitmap(__u32 bank, __u32 class)
{
	__u32 k = bank * FILTER_CLASSES + (class & (FILTER_CLASSES - 1));

	return bpf_map_lookup_elem(&filter_bitmaps, &k);
}

/*
 * acc &= a | b (b may be a again); 0 when no rule is left. All words,
 * whatever the rule count: no branch for the verifier to multiply.
 */
static __always_inline int filter_and(struct filter_bits *acc, struct filter_bits *a,
				      struct filter_bits *b, const int n /* words: a constant */)
{
	__u64 any = 0;

	if (!a || !b)
		return 0;
#pragma unroll
	for (int i = 0; i < FILTER_WORDS; i++) {
		if (i < n) {
			acc->w[i] &= a->w[i] | b->w[i];
			any |= acc->w[i];
		}
	}
	return any != 0;
}

/* acc &= b: filter_and with one bitmap, half the loads. */
static __always_inline int filter_and1(struct filter_bits *acc, struct filter_bits *b, const int n)
{
	__u64 any = 0;

	if (!b)
		return 0;
#pragma unroll
	for (int i = 0; i < FILTER_WORDS; i++) {
		if (i < n) {
			acc->w[i] &= b->w[i];
			any |= acc->w[i];
		}
	}
	return any != 0;
}

static __always_inline int filter_field(struct filter_bits *acc, __u32 bank, __u32 idx, const int n)
{
	return filter_and1(acc, filter_bitmap(bank, filter_class_at(bank, idx)), n);
}

static __always_inline int filter_prefix(struct filter_bits *acc, __u32 bank, __u32 tag,
					 const __u8 *addr, int v6, const int n)
{
	struct filter_key key = { .prefixlen = v6 ? 32 + 128 : 32 + 32, .tag = bank << 2 | tag };

	__builtin_memcpy(key.addr, addr, 16);
	__u32 *c = bpf_map_lookup_elem(&filter_prefixes, &key);
	return filter_and1(acc, filter_bitmap(bank, c ? *c : 0), n);
}

/* A GCRA token bucket per CPU: 1 if the packet conforms to the rate. */
static __always_inline int filter_conform(struct filter_rule *r, __u64 bytes)
{
	__u32 slot = r->slot;
	struct filter_bucket *b = bpf_map_lookup_elem(&filter_buckets, &slot);

	if (!b)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	__u64 units = r->flags & FR_F_BYTES ? bytes : 1;
	__u64 cost = units * r->ps_per_unit / 1000;
	/* Conforms unless the bucket is more than the burst ahead of now. */
	__u64 tat = b->tat > now ? b->tat : now;
	if (tat > now + r->burst_ns)
		return 0;
	b->tat = tat + cost;
	return 1;
}

/*
 * Index of the lowest set bit of acc, FILTER_MAX if none. Global: the
 * verifier checks it once, not once per path of its callers.
 */
__noinline int filter_first(struct filter_bits *acc)
{
	if (!acc)
		return FILTER_MAX;
	for (int i = 0; i < FILTER_WORDS; i++) {
		__u64 w = acc->w[i];
		if (w) {
			acc->w[i] = w & (w - 1);
			return i * 64 + ctz64(w);
		}
	}
	return FILTER_MAX;
}

/*
 * ANDs into acc (all ones to start with) the bitmaps of p's fields; 0 if
 * no rule is left. n: the words in use, a constant (see filter_match1).
 */
static __always_inline int filter_match(struct filter_pkt *p, struct filter_bits *acc, __u32 bank,
					__u32 fields, __u32 family, const int n)
{
	if (!p || !acc)
		return 0;
	bank &= 1;
	/* A family's rules first: an array lookup, where a prefix field would
	 * cost a trie walk. */
	if (fields & (1 << FF_FAMILY)) {
		if (!filter_and1(acc, filter_bitmap(bank, family), n))
			return 0;
	}
	if ((fields & (1 << FF_DST)) && !filter_prefix(acc, bank, 0 | (p->v6 & 1), p->daddr, p->v6, n))
		return 0;
	if ((fields & (1 << FF_SRC)) && !filter_prefix(acc, bank, 2 | (p->v6 & 1), p->saddr, p->v6, n))
		return 0;
	if ((fields & (1 << FF_PROTO)) && !filter_field(acc, bank, FT_PROTO + p->proto, n))
		return 0;
	if ((fields & (1 << FF_DPORT)) && !filter_field(acc, bank, FT_DPORT + (p->dport & 0x1ffff), n))
		return 0;
	if ((fields & (1 << FF_SPORT)) && !filter_field(acc, bank, FT_SPORT + (p->sport & 0x1ffff), n))
		return 0;
	if (fields & (1 << FF_PORT)) { /* the source or the destination port */
		struct filter_bits *a = filter_bitmap(bank, filter_class_at(bank, FT_PORT + (p->sport & 0x1ffff)));
		struct filter_bits *b = filter_bitmap(bank, filter_class_at(bank, FT_PORT + (p->dport & 0x1ffff)));
		if (!filter_and(acc, a, b, n))
			return 0;
	}
	if ((fields & (1 << FF_ICMP_TYPE)) && !filter_field(acc, bank, FT_ICMP_TYPE + (p->icmp_type & 0x1ff), n))
		return 0;
	if ((fields & (1 << FF_ICMP_CODE)) && !filter_field(acc, bank, FT_ICMP_CODE + (p->icmp_code & 0x1ff), n))
		return 0;
	if ((fields & (1 << FF_TCP_FLAGS)) && !filter_field(acc, bank, FT_TCP_FLAGS + (p->tcp_flags & 0x1ff), n))
		return 0;
	if ((fields & (1 << FF_DSCP)) && !filter_field(acc, bank, FT_DSCP + (p->dscp & 63), n))
		return 0;
	if ((fields & (1 << FF_FRAG)) && !filter_field(acc, bank, FT_FRAG + (p->frag & 3), n))
		return 0;
	if ((fields & (1 << FF_LEN)) && !filter_field(acc, bank, FT_LEN + (p->len & 0xffff), n))
		return 0;
	if (fields & (1 << FF_INGRESS)) {
		struct filter_port_key pk = { .bank = bank, .ifindex = p->ingress };
		__u32 *c = bpf_map_lookup_elem(&filter_ports, &pk);
		if (!c) {
			pk.ifindex = 0;
			c = bpf_map_lookup_elem(&filter_ports, &pk);
		}
		if (!filter_and1(acc, filter_bitmap(bank, c ? *c : 0), n))
			return 0;
	}
	return 1;
}

/*
 * Global (checked once by the verifier), one per bitmap width: up to 64
 * rules one word is ANDed per field, not 16.
 */
__noinline int filter_match1(struct filter_pkt *p, struct filter_bits *acc, __u32 bank, __u32 fields,
			     __u32 family)
{
	return filter_match(p, acc, bank, fields, family, 1);
}

__noinline int filter_match16(struct filter_pkt *p, struct filter_bits *acc, __u32 bank, __u32 fields,
			      __u32 family)
{
	return filter_match(p, acc, bank, fields, family, FILTER_WORDS);
}

/*
 * Classifies the packet and applies the matching rules in order: the
 * first terminal action decides. Returns the verdict (enum
 * filter_verdict) | (1 + key of the last rule that let the packet
 * through with a DSCP or a redirect) << 8.
 */
__noinline int filter(struct filter_pkt *p)
{
	__u32 zero = 0;
	struct filter_meta *m = bpf_map_lookup_elem(&filter_state, &zero);

	if (!p || !m)
		return FV_FORWARD;
	__u32 bank = m->bank & 1;
	if (m->rules[bank] == 0)
		return FV_FORWARD;
	struct filter_bits acc;
	__u32 family = m->family[bank][p->v6 & 1];
	if (m->words[bank] <= 1) {
		acc.w[0] = ~0ULL;
#pragma unroll
		for (int i = 1; i < FILTER_WORDS; i++)
			acc.w[i] = 0;
		if (!filter_match1(p, &acc, bank, m->fields[bank], family))
			return FV_FORWARD;
	} else {
#pragma unroll
		for (int i = 0; i < FILTER_WORDS; i++)
			acc.w[i] = ~0ULL;
		if (!filter_match16(p, &acc, bank, m->fields[bank], family))
			return FV_FORWARD;
	}

	int keep = 0;
	for (int n = 0; n < FILTER_MATCHES; n++) {
		__u32 idx = filter_first(&acc);
		if (idx >= FILTER_MAX)
			break;
		__u32 k = bank * FILTER_MAX + idx;
		struct filter_rule *r = bpf_map_lookup_elem(&filter_rules, &k);
		if (!r)
			break;
		__u32 slot = r->slot;
		struct filter_counter *c = bpf_map_lookup_elem(&filter_counters, &slot);
		if (c) {
			c->packets++;
			c->bytes += p->bytes;
		}
		__u8 action = r->action, flags = r->flags;
		if (action == FA_DROP)
			return FV_DROP;
		if (action == FA_PASS)
			return FV_PASS;
		if (action == FA_COUNT)
			continue;
		if (action == FA_RATE_LIMIT && !filter_conform(r, p->bytes)) {
			if (c)
				c->dropped++;
			return FV_RATE_DROP;
		}
		if (flags & (FR_F_REMARK | FR_F_REDIRECT))
			keep = (k + 1) << 8;
		if (!(flags & FR_F_CONTINUE))
			break;
	}
	return keep | FV_FORWARD;
}

/* The rule filter() kept for its DSCP or redirect, or NULL. */
static __always_inline struct filter_rule *filter_kept(int v)
{
	__u32 k = (__u32)v >> 8;

	if (k == 0)
		return 0;
	k--;
	return bpf_map_lookup_elem(&filter_rules, &k);
}

/* The stat and action of a filter verdict; -1: go on. */
static __always_inline int filter_stat(int v)
{
	switch (v & 0xff) {
	case FV_DROP:
		return STAT_DROP_FILTER;
	case FV_PASS:
		return STAT_PASS_FILTER;
	case FV_RATE_DROP:
		return STAT_DROP_RATE_LIMIT;
	}
	return -1;
}

/* L4 fields of a packet at l4 (proto, no fragment offset) for filters. */
static __always_inline void filter_l4(struct filter_pkt *p, void *l4, void *data_end)
{
	if (p->frag == FRAG_LATER)
		return;
	if (has_ports(p->proto) && l4 + 4 <= data_end) {
		p->sport = bpf_ntohs(*(__be16 *)l4);
		p->dport = bpf_ntohs(*(__be16 *)(l4 + 2));
		if (p->proto == IPPROTO_TCP && l4 + 14 <= data_end)
			p->tcp_flags = *(__u8 *)(l4 + 13);
	} else if ((p->proto == IPPROTO_ICMP && !p->v6) || (p->proto == 58 && p->v6)) {
		if (l4 + 2 <= data_end) {
			p->icmp_type = *(__u8 *)l4;
			p->icmp_code = *(__u8 *)(l4 + 1);
		}
	}
}

static __always_inline void filter_pkt_init(struct filter_pkt *p)
{
	p->sport = p->dport = 65536;
	p->icmp_type = p->icmp_code = p->tcp_flags = 256;
}

/* Replace a 16-bit word covered by an IPv4 header checksum (RFC 1624). */
static __always_inline void csum_replace2(__u16 *check, __u16 old, __u16 new)
{
	__u32 c = (__u16)~*check + (__u16)~old + new;

	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	*check = ~c;
}

/*
 * Whether a member of group gid goes out of port in. A global function:
 * the verifier checks it once, not inline on every path (a 64-member
 * scan inlined cost 50k of its 1M-instruction budget).
 */
__noinline int urpf_member_port(__u32 gid, __u32 in)
{
	struct nhg *g = bpf_map_lookup_elem(&nhgs, &gid);

	if (!g)
		return 0;
	for (int i = 0; i < MAX_ECMP; i++) {
		if (i >= g->count)
			break;
		__u32 id = g->nh[i];
		struct nexthop *nh = bpf_map_lookup_elem(&nexthops, &id);
		if (nh && nh->ifindex == in)
			return 1;
	}
	return 0;
}

/*
 * uRPF (RFC 3704) with the source's route rt (found: whether there is
 * one): -1 if the packet may go on, else the stat to count.
 */
static __always_inline int urpf(struct route_val *rt, int found, __u32 in, __u8 mode)
{
	if (!found)
		return STAT_DROP_URPF;
	switch (rt->type) {
	case ROUTE_UNICAST:
		break;
	case ROUTE_BLACKHOLE: /* source-based RTBH */
		return STAT_DROP_BLACKHOLE_SRC;
	case ROUTE_KERNEL: /* its interface is the kernel's to know */
		return mode == URPF_LOOSE ? -1 : STAT_PASS_URPF_KERNEL;
	default: /* local, unreachable: the kernel's fib_validate_source fails */
		return STAT_DROP_URPF;
	}
	if (mode == URPF_LOOSE)
		return -1;
	/* ECMP: any member's port will do, as in the kernel. */
	return urpf_member_port(rt->nhg, in) ? -1 : STAT_DROP_URPF;
}

/*
 * Policy rules (fwd.h). A packet's routing keys, as the kernel's flow
 * (flowi) has them for a forwarded packet.
 */
struct rule_req {
	__u8 src[16], dst[16]; /* IPv4: the first 4 bytes */
	__u32 iif;
	__u16 sport, dport;
	__u8 proto, tos, v6, pad;
	__u8 rclass[2];     /* the ingress port's class, per bank */
	__u16 rule;         /* out: the rule that decided */
	struct route_val rt; /* out: the route (RV_ROUTE) */
	struct route_val main; /* the main table's route, once looked up */
	__u8 main_state;       /* 0: not looked up, 1: main holds it, 2: none */
	__u8 pad2[3];
};

/* Per CPU: the request, off the stack (the program's stack is nearly full). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rule_req);
} rule_scratch SEC(".maps");

/* The zeroed request of this CPU, or NULL. */
static __always_inline struct rule_req *rule_req_get(__u32 in, __u16 rclass)
{
	__u32 zero = 0;
	struct rule_req *q = bpf_map_lookup_elem(&rule_scratch, &zero);

	if (!q)
		return 0;
	/* Every field is set: the caller fills the addresses, ports and
	 * protocol (zero where the packet has none). */
	__builtin_memset(q, 0, __builtin_offsetof(struct rule_req, rclass));
	q->main_state = 0;
	q->iif = in;
	q->rclass[0] = rclass;
	q->rclass[1] = rclass >> 8;
	return q;
}

/*
 * Inlined: a call costs as much as a lookup here (return thunks); the
 * walk that calls it is one function (rules_eval).
 */
static __always_inline int table_lookup(struct rule_req *q, __u32 slot)
{
	if (!q)
		return 0;
	if (q->v6)
		return route_v6(slot, (struct in6_addr *)q->dst, &q->rt);
	__be32 a;
	__builtin_memcpy(&a, q->dst, 4);
	return route_v4(slot, a, &q->rt);
}

/* 0: q's destination is no address of the router (local_bloom). */
static __always_inline int local_maybe(struct rule_req *q)
{
	__u32 zero = 0, a;
	struct local_bits *b = bpf_map_lookup_elem(&local_bloom, &zero);

	if (!b)
		return 1;
	__builtin_memcpy(&a, q->dst, 4);
	if (q->v6) {
		__u32 w[4];
		__builtin_memcpy(w, q->dst, 16);
		a = w[0] ^ w[1] ^ w[2] ^ w[3];
	}
	__u32 h = (bpf_ntohl(a) * 0x9E3779B1u) >> 20; /* 12 bits */
	return (b->w[(h >> 6) & 63] >> (h & 63)) & 1;
}

/* table_lookup of the main table, looked up once per packet. */
static __always_inline int main_lookup(struct rule_req *q)
{
	if (!q->main_state) {
		q->main_state = table_lookup(q, 0) ? 1 : 2;
		q->main = q->rt;
		return q->main_state == 1;
	}
	q->rt = q->main;
	return q->main_state == 1;
}

static __always_inline int masked_eq(const __u8 *a, const __u8 *b, const __u8 *mask)
{
	__u32 x = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		x |= (((__u32 *)a)[i] ^ ((__u32 *)b)[i]) & ((__u32 *)mask)[i];
	return x == 0;
}

static __always_inline int rule_match(struct prule *r, struct rule_req *q)
{
	__u8 f = r->flags;
	int m = 1;

	if ((f & RF_SRC) && !masked_eq(q->src, r->src, r->src_mask))
		m = 0;
	else if ((f & RF_DST) && !masked_eq(q->dst, r->dst, r->dst_mask))
		m = 0;
	else if ((f & RF_IIF) && q->iif != r->iif)
		m = 0;
	else if ((f & RF_PROTO) && q->proto != r->proto)
		m = 0;
	else if ((f & RF_SPORT) && (q->sport < r->sport_lo || q->sport > r->sport_hi))
		m = 0;
	else if ((f & RF_DPORT) && (q->dport < r->dport_lo || q->dport > r->dport_hi))
		m = 0;
	else if ((f & RF_TOS) && (q->tos & r->tos_mask) != r->tos)
		m = 0;
	return f & RF_INVERT ? !m : m;
}

/*
 * The kernel's fib_rules_lookup for q: the candidate rules of q's source
 * and port classes in priority order, each checked and applied; a lookup
 * that finds no route (or a throw route, or a suppressed one) goes on.
 * Returns enum rule_verdict.
 */
__noinline int rules_eval(struct rule_req *q)
{
	__u32 zero = 0;
	struct rule_meta *m = bpf_map_lookup_elem(&rule_state, &zero);

	if (!q || !m)
		return RV_KERNEL;
	__u32 bank = m->bank & 1, fam = q->v6 & 1;
	__u32 n = m->n[bank][fam], nsrc = m->nsrc[bank][fam];
	if (n == 0) /* the defaults: main table only */
		return main_lookup(q) ? RV_ROUTE : RV_NO_ROUTE;
	__u32 sclass = 0;
	if (nsrc > 1 && rules_compiled) {
		__u32 e = 0;
		if (fam) {
			lpm_walk_v6(&rule_top6, bank << LPM_TOP_BITS, (struct in6_addr *)q->src, &e);
		} else {
			__be32 a;
			__builtin_memcpy(&a, q->src, 4);
			lpm_walk_v4(&rule_top4, bank << LPM_TOP_BITS, bpf_ntohl(a), &e);
		}
		sclass = e & LPM_GROUP_MASK;
	} else if (nsrc > 1) {
		struct rule_src_key k = { .prefixlen = fam ? 32 + 128 : 32 + 32, .tag = bank << 1 | fam };
		__builtin_memcpy(k.addr, q->src, 16);
		__u32 *c = bpf_map_lookup_elem(&rule_src, &k);
		if (c)
			sclass = *c;
	}
	__u32 iclass = q->iif == 1 ? m->lo_class[bank] : q->rclass[bank];
	__u32 li = (bank * 2 + fam) * RULE_LISTS + ((iclass * nsrc + sclass) & (RULE_LISTS - 1));
	struct rule_list *l = bpf_map_lookup_elem(&rule_lists, &li);
	if (!l)
		return RV_KERNEL;
	__u32 from = 0, cnt = l->n;
	for (int i = 0; i < RULE_CANDS; i++) {
		if (i >= cnt)
			break;
		__u32 idx = l->idx[i];
		if (idx < from)
			continue; /* skipped by a goto */
		__u32 rk = (bank * 2 + fam) * MAX_RULES + (idx & (MAX_RULES - 1));
		struct prule *r = bpf_map_lookup_elem(&rules, &rk);
		if (!r)
			return RV_KERNEL;
		if (!rule_match(r, q))
			continue;
		q->rule = idx;
		switch (r->action) {
		case RA_LOOKUP: {
			__u8 suppress = r->suppress;
			if (!(r->table == 0 ? main_lookup(q) : table_lookup(q, r->table)) || q->rt.type == ROUTE_THROW)
				continue;
			/* The kernel suppresses only results that are not errors. */
			if (suppress && q->rt.plen < suppress &&
			    (q->rt.type == ROUTE_UNICAST || q->rt.type == ROUTE_LOCAL || q->rt.type == ROUTE_KERNEL))
				continue;
			return RV_ROUTE;
		}
		case RA_GOTO:
			if (r->goto_idx != RULE_NONE)
				from = r->goto_idx;
			continue;
		case RA_NOP:
			continue;
		case RA_LOCAL:
			/* The router's addresses are local routes of the main table
			 * (sync puts them there, and nothing is longer than them). */
			if (local_maybe(q) && main_lookup(q) && q->rt.type == ROUTE_LOCAL)
				return RV_LOCAL;
			continue;
		case RA_BLACKHOLE:
			return RV_BLACKHOLE;
		case RA_UNREACHABLE:
			return RV_UNREACHABLE;
		default:
			return RV_KERNEL;
		}
	}
	return RV_NO_ROUTE;
}

/* The stat of a verdict other than RV_ROUTE. */
static __always_inline int rule_stat(int v)
{
	switch (v) {
	case RV_NO_ROUTE:
		return STAT_PASS_NO_ROUTE;
	case RV_BLACKHOLE:
		return STAT_DROP_RULE;
	case RV_UNREACHABLE:
		return STAT_PASS_RULE;
	case RV_LOCAL:
		return STAT_PASS_LOCAL;
	}
	return STAT_PASS_RULE_KERNEL;
}

/*
 * The flow's ports as the kernel's flow dissector gives them to the rules:
 * none for fragments, the SPI for ESP, ...
 */
static __always_inline void rule_ports(struct rule_req *q, void *l4, void *data_end, int frag)
{
	__u32 off;

	switch (q->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
	case 33:  /* DCCP */
	case 136: /* UDP-Lite */
	case 50:  /* ESP: the SPI */
		off = 0;
		break;
	case 51: /* AH: the SPI */
		off = 4;
		break;
	default:
		return;
	}
	if (frag || l4 + off + 4 > data_end)
		return;
	q->sport = bpf_ntohs(*(__be16 *)(l4 + off));
	q->dport = bpf_ntohs(*(__be16 *)(l4 + off + 2));
}

/*
 * uRPF under policy rules: the kernel validates the source with a lookup
 * of the reversed flow arriving from lo (fib_validate_source); -1 if the
 * packet may go on, else the stat to count.
 */
static __always_inline int urpf_rules(struct rule_req *q, __u32 in, __u8 mode)
{
	__u8 a[16];
	__u16 p = q->sport;

	/* Reverse the flow in place, then restore it. */
	__builtin_memcpy(a, q->src, 16);
	__builtin_memcpy(q->src, q->dst, 16);
	__builtin_memcpy(q->dst, a, 16);
	q->sport = q->dport;
	q->dport = p;
	q->iif = 1; /* LOOPBACK_IFINDEX */
	q->main_state = 0;
	int v = rules_eval(q);
	q->main_state = 0; /* main's route was the source's */
	__builtin_memcpy(q->dst, q->src, 16);
	__builtin_memcpy(q->src, a, 16);
	q->dport = q->sport;
	q->sport = p;
	q->iif = in;
	if (v == RV_KERNEL)
		return STAT_PASS_URPF_KERNEL;
	if (v == RV_LOCAL)
		q->rt.type = ROUTE_LOCAL;
	return urpf(&q->rt, v == RV_ROUTE || v == RV_LOCAL, in, mode);
}

static __always_inline int v4_special(__u32 daddr /* host order */)
{
	return (daddr & 0xf0000000) == 0xe0000000 || /* 224.0.0.0/4 multicast */
	       daddr == 0xffffffff ||                 /* limited broadcast */
	       (daddr & 0xffff0000) == 0xa9fe0000 ||  /* 169.254.0.0/16 */
	       daddr == 0;                            /* 0.0.0.0 from 0.0.0.0: broadcast input */
}

/*
 * Destinations the kernel drops as martian (ip_route_input_slow, without
 * route_localnet): 0.0.0.0/8 (but 0.0.0.0 from 0.0.0.0) and 127.0.0.0/8.
 */
static __always_inline int v4_martian_dst(__u32 daddr, __u32 saddr)
{
	return ((daddr & 0xff000000) == 0x00000000 && (daddr != 0 || saddr != 0)) ||
	       (daddr & 0xff000000) == 0x7f000000;
}

/*
 * Sources the kernel drops as martian whatever its settings (fib_validate
 * source aside: ip_route_input_slow): 0.0.0.0/8, 127.0.0.0/8, multicast
 * and the limited broadcast. XDP drops them too, so that forwarding in XDP
 * does not let through what the kernel would not.
 */
static __always_inline int v4_martian_src(__u32 saddr)
{
	return (saddr & 0xff000000) == 0x00000000 || /* 0.0.0.0/8 */
	       (saddr & 0xff000000) == 0x7f000000 || /* 127.0.0.0/8 */
	       (saddr & 0xf0000000) == 0xe0000000 || /* 224.0.0.0/4 */
	       saddr == 0xffffffff;
}

static __always_inline int fwd_v4(struct xdp_md *ctx, void *l3, void *data_end,
				  __u64 bytes, __u32 in, __u8 urpf_mode, __u16 rclass)
{
	struct iphdr *iph = l3;

	if ((void *)(iph + 1) > data_end)
		return count(ctx, STAT_PASS_MALFORMED, bytes, XDP_PASS);
	__u32 hlen = iph->ihl * 4;
	__u32 tot = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || hlen < sizeof(*iph) || tot < hlen ||
	    (void *)iph + tot > data_end)
		return count(ctx, STAT_PASS_MALFORMED, bytes, XDP_PASS);

	/* Filters first: whatever XDP would pass to the kernel is filtered too. */
	struct filter_pkt fp = {};
	filter_pkt_init(&fp);
	fp.proto = iph->protocol;
	fp.dscp = iph->tos >> 2;
	fp.len = tot;
	if (iph->frag_off & bpf_htons(IPV4_OFFSET))
		fp.frag = FRAG_LATER;
	else if (iph->frag_off & bpf_htons(IPV4_MF))
		fp.frag = FRAG_FIRST;
	filter_l4(&fp, (void *)iph + (hlen & 0x3c), data_end);
	fp.ingress = in;
	fp.bytes = bytes;
	__builtin_memcpy(fp.saddr, &iph->saddr, 4);
	__builtin_memcpy(fp.daddr, &iph->daddr, 4);
	int v = filter(&fp), s = filter_stat(v);
	if (s >= 0)
		return count(ctx, s, bytes, s == STAT_PASS_FILTER ? XDP_PASS : XDP_DROP);
	struct filter_rule *fr = filter_kept(v);
	if (fr && (fr->flags & FR_F_REMARK)) {
		__u16 old = *(__u16 *)iph;
		iph->tos = fr->dscp << 2 | (iph->tos & 3);
		csum_replace2(&iph->check, old, *(__u16 *)iph);
	}

	__u32 daddr = bpf_ntohl(iph->daddr), saddr = bpf_ntohl(iph->saddr);
	if (v4_martian_dst(daddr, saddr))
		return count(ctx, STAT_DROP_MARTIAN_DST, bytes, XDP_DROP);
	if (v4_special(daddr))
		return count(ctx, STAT_PASS_LINKLOCAL_MCAST, bytes, XDP_PASS);
	if (v4_martian_src(saddr))
		return count(ctx, STAT_DROP_MARTIAN_SRC, bytes, XDP_DROP);
	struct route_val route, *rt = &route;
	/* Policy rules beyond the defaults: the flow as the kernel sees it. */
	struct rule_req *q = 0;
	if (rules_on & 1) {
		q = rule_req_get(in, rclass);
		if (!q)
			return count(ctx, STAT_PASS_RULE_KERNEL, bytes, XDP_PASS);
		__builtin_memcpy(q->src, &iph->saddr, 4);
		__builtin_memcpy(q->dst, &iph->daddr, 4);
		q->proto = iph->protocol;
		q->tos = iph->tos;
		rule_ports(q, (void *)iph + (hlen & 0x3c), data_end, fp.frag != FRAG_NONE);
	}
	if (urpf_mode) {
		if (q)
			s = urpf_rules(q, in, urpf_mode);
		else
			s = urpf(rt, route_v4(0, iph->saddr, rt), in, urpf_mode);
		if (s >= 0)
			return count(ctx, s, bytes, s == STAT_PASS_URPF_KERNEL ? XDP_PASS : XDP_DROP);
	}
	if (hlen != sizeof(*iph))
		return count(ctx, STAT_PASS_IP_OPTIONS, bytes, XDP_PASS);

	/* A redirect (Flowspec) forwards by the main table's route to its address, if any. */
	__be32 target = iph->daddr;
	int found = 0;
	if (fr && (fr->flags & FR_F_REDIRECT)) {
		__builtin_memcpy(&target, &fr->redirect[12], 4);
		found = route_v4(0, target, rt) && rt->type == ROUTE_UNICAST;
	}
	if (!found) {
		target = iph->daddr;
		if (q) {
			int v = rules_eval(q);
			if (v != RV_ROUTE) {
				s = rule_stat(v);
				return count(ctx, s, bytes, s == STAT_DROP_RULE ? XDP_DROP : XDP_PASS);
			}
			*rt = q->rt;
		} else if (!route_v4(0, target, rt)) {
			return count(ctx, STAT_PASS_NO_ROUTE, bytes, XDP_PASS);
		}
	}
	s = route_stat(rt);
	if (s >= 0)
		return count(ctx, s, bytes, s == STAT_DROP_BLACKHOLE ? XDP_DROP : XDP_PASS);
	if (iph->ttl <= 1)
		return count(ctx, STAT_PASS_TTL, bytes, XDP_PASS);

	struct fwd_ctx fc = {};
	fc.nkey.addr[10] = 0xff;
	fc.nkey.addr[11] = 0xff;
	__builtin_memcpy(&fc.nkey.addr[12], &target, 4);
	fc.pkt_len = tot;

	__u32 ports = 0;
	if (!(iph->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET)))
		ports = l4_ports(iph + 1, data_end, tot - hlen, iph->protocol);
	__u32 h = mix(hash_seed, iph->saddr);
	h = mix(h, iph->daddr);
	h = mix(h, iph->protocol);
	h = mix(h, ports);
	fc.hash = fmix(h ^ 13);

	__u8 *dmac = 0, *smac = 0;
	s = resolve(rt, &fc, &dmac, &smac);
	if (s >= 0)
		return count(ctx, s, bytes, XDP_PASS);

	/* ip_decrease_ttl(): incremental checksum update (RFC 1624). */
	__u32 check = iph->check;
	check += bpf_htons(0x0100);
	iph->check = (__u16)(check + (check >= 0xFFFF));
	iph->ttl--;

	return finish(ctx, dmac, smac, bytes, &fc);
}

static __always_inline int v6_special(struct in6_addr *a)
{
	__u32 w0 = bpf_ntohl(a->in6_u.u6_addr32[0]);

	if ((w0 & 0xff000000) == 0xff000000) /* ff00::/8 multicast */
		return 1;
	if ((w0 & 0xffc00000) == 0xfe800000) /* fe80::/10 link-local */
		return 1;
	/* :: (the kernel's own business) */
	return w0 == 0 && a->in6_u.u6_addr32[1] == 0 && a->in6_u.u6_addr32[2] == 0 &&
	       a->in6_u.u6_addr32[3] == 0;
}

/* The loopback address, which the kernel drops from the wire (ip6_rcv_core). */
static __always_inline int v6_martian_dst(struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == 0 && a->in6_u.u6_addr32[3] == bpf_htonl(1);
}

static __always_inline int ipv6_ext(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0:   /* hop-by-hop options */
	case 43:  /* routing */
	case 44:  /* fragment */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		return 1;
	}
	return 0;
}

/*
 * Sources the kernel drops on receive (ip6_rcv_core): multicast, the
 * loopback address and IPv4-mapped addresses (RFC 4291 2.5.5.2).
 */
static __always_inline int v6_martian_src(struct in6_addr *a)
{
	__u32 w0 = bpf_ntohl(a->in6_u.u6_addr32[0]);

	if ((w0 & 0xff000000) == 0xff000000) /* ff00::/8 */
		return 1;
	if (w0 != 0 || a->in6_u.u6_addr32[1] != 0)
		return 0;
	__u32 w2 = bpf_ntohl(a->in6_u.u6_addr32[2]);
	return w2 == 0xffff || /* ::ffff:0:0/96 */
	       (w2 == 0 && bpf_ntohl(a->in6_u.u6_addr32[3]) == 1); /* ::1 */
}

static __always_inline int fwd_v6(struct xdp_md *ctx, void *l3, void *data_end,
				  __u64 bytes, __u32 in, __u8 urpf_mode, __u16 rclass)
{
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > data_end)
		return count(ctx, STAT_PASS_MALFORMED, bytes, XDP_PASS);
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || (void *)(ip6 + 1) + plen > data_end)
		return count(ctx, STAT_PASS_MALFORMED, bytes, XDP_PASS);

	struct filter_pkt fp = {};
	filter_pkt_init(&fp);
	fp.v6 = 1;
	fp.proto = ip6->nexthdr;
	fp.dscp = (ip6->priority << 2 | ip6->flow_lbl[0] >> 6) >> 2;
	fp.len = plen + sizeof(*ip6);
	void *l4 = ip6 + 1;
	if (ip6->nexthdr == 44 && l4 + 8 <= data_end) { /* fragment header */
		__u16 off = bpf_ntohs(*(__be16 *)(l4 + 2));
		fp.proto = *(__u8 *)l4;
		fp.frag = off & 0xfff8 ? FRAG_LATER : (off & 1 ? FRAG_FIRST : FRAG_NONE);
		l4 += 8;
	}
	if (!ipv6_ext(fp.proto))
		filter_l4(&fp, l4, data_end);
	fp.ingress = in;
	fp.bytes = bytes;
	__builtin_memcpy(fp.saddr, &ip6->saddr, 16);
	__builtin_memcpy(fp.daddr, &ip6->daddr, 16);
	int v = filter(&fp), s = filter_stat(v);
	if (s >= 0)
		return count(ctx, s, bytes, s == STAT_PASS_FILTER ? XDP_PASS : XDP_DROP);
	struct filter_rule *fr = filter_kept(v);
	if (fr && (fr->flags & FR_F_REMARK)) {
		/* Traffic class: the low nibble of byte 0 and the high one of byte 1. */
		__u8 tc = fr->dscp << 2 | (ip6->flow_lbl[0] >> 4 & 3);
		ip6->priority = tc >> 4;
		ip6->flow_lbl[0] = (tc & 0xf) << 4 | (ip6->flow_lbl[0] & 0xf);
	}

	if (v6_martian_dst(&ip6->daddr))
		return count(ctx, STAT_DROP_MARTIAN_DST, bytes, XDP_DROP);
	if (v6_special(&ip6->daddr))
		return count(ctx, STAT_PASS_LINKLOCAL_MCAST, bytes, XDP_PASS);
	/* A link-local source must not leave its link (RFC 4291 2.5.6). */
	if ((bpf_ntohl(ip6->saddr.in6_u.u6_addr32[0]) & 0xffc00000) == 0xfe800000)
		return count(ctx, STAT_PASS_LINKLOCAL_MCAST, bytes, XDP_PASS);
	if (v6_martian_src(&ip6->saddr))
		return count(ctx, STAT_DROP_MARTIAN_SRC, bytes, XDP_DROP);
	struct route_val route, *rt = &route;
	struct rule_req *q = 0;
	if (rules_on & 2) {
		q = rule_req_get(in, rclass);
		if (!q)
			return count(ctx, STAT_PASS_RULE_KERNEL, bytes, XDP_PASS);
		__builtin_memcpy(q->src, &ip6->saddr, 16);
		__builtin_memcpy(q->dst, &ip6->daddr, 16);
		q->v6 = 1;
		q->proto = fp.proto;
		q->tos = ip6->priority << 4 | ip6->flow_lbl[0] >> 4;
		rule_ports(q, l4, data_end, fp.frag != FRAG_NONE);
	}
	if (urpf_mode) {
		if (q)
			s = urpf_rules(q, in, urpf_mode);
		else
			s = urpf(rt, route_v6(0, &ip6->saddr, rt), in, urpf_mode);
		if (s >= 0)
			return count(ctx, s, bytes, s == STAT_PASS_URPF_KERNEL ? XDP_PASS : XDP_DROP);
	}
	if (ipv6_ext(ip6->nexthdr))
		return count(ctx, STAT_PASS_IPV6_EXT, bytes, XDP_PASS);

	struct in6_addr target = ip6->daddr;
	int found = 0;
	if (fr && (fr->flags & FR_F_REDIRECT)) {
		__builtin_memcpy(&target, fr->redirect, 16);
		found = route_v6(0, &target, rt) && rt->type == ROUTE_UNICAST;
	}
	if (!found) {
		target = ip6->daddr;
		if (q) {
			int v = rules_eval(q);
			if (v != RV_ROUTE) {
				s = rule_stat(v);
				return count(ctx, s, bytes, s == STAT_DROP_RULE ? XDP_DROP : XDP_PASS);
			}
			*rt = q->rt;
		} else if (!route_v6(0, &target, rt)) {
			return count(ctx, STAT_PASS_NO_ROUTE, bytes, XDP_PASS);
		}
	}
	s = route_stat(rt);
	if (s >= 0)
		return count(ctx, s, bytes, s == STAT_DROP_BLACKHOLE ? XDP_DROP : XDP_PASS);
	if (ip6->hop_limit <= 1)
		return count(ctx, STAT_PASS_TTL, bytes, XDP_PASS);

	struct fwd_ctx fc = {};
	__builtin_memcpy(fc.nkey.addr, &target, 16);
	fc.pkt_len = plen + sizeof(*ip6);

	__u32 ports = l4_ports(ip6 + 1, data_end, plen, ip6->nexthdr);
	__u32 h = hash_seed;
	h = mix(h, ip6->saddr.in6_u.u6_addr32[0]);
	h = mix(h, ip6->saddr.in6_u.u6_addr32[1]);
	h = mix(h, ip6->saddr.in6_u.u6_addr32[2]);
	h = mix(h, ip6->saddr.in6_u.u6_addr32[3]);
	h = mix(h, ip6->daddr.in6_u.u6_addr32[0]);
	h = mix(h, ip6->daddr.in6_u.u6_addr32[1]);
	h = mix(h, ip6->daddr.in6_u.u6_addr32[2]);
	h = mix(h, ip6->daddr.in6_u.u6_addr32[3]);
	h = mix(h, ip6->nexthdr);
	h = mix(h, ports);
	fc.hash = fmix(h ^ 37);

	__u8 *dmac = 0, *smac = 0;
	s = resolve(rt, &fc, &dmac, &smac);
	if (s >= 0)
		return count(ctx, s, bytes, XDP_PASS);

	ip6->hop_limit--;
	return finish(ctx, dmac, smac, bytes, &fc);
}

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return count(ctx, STAT_PASS_MALFORMED, bytes, XDP_PASS);

	/*
	 * One 802.1Q tag: the frame arrives on the VLAN port of (the receiving
	 * device, its VLAN id). The tag stays until the frame is redirected
	 * (finish): whatever goes to the kernel goes as it came.
	 */
	__u32 in = ctx->ingress_ifindex;
	__be16 proto = eth->h_proto;
	void *l3 = eth + 1;
	struct iface *port;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (l3 + 4 > data_end)
			return count(ctx, STAT_PASS_MALFORMED, bytes, XDP_PASS);
		__u16 tci = bpf_ntohs(*(__be16 *)l3);
		proto = *(__be16 *)(l3 + 2);
		if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
			return count(ctx, STAT_PASS_VLAN_OTHER, bytes, XDP_PASS);
		/* Before not_ip: a VLAN without a port shows, ARP and all. */
		struct vlan_key vk = { .ifindex = in, .vid = tci & 0xfff };
		struct vlan_val *vv = bpf_map_lookup_elem(&vlans, &vk);
		if (!vv)
			return count(ctx, STAT_PASS_VLAN_UNKNOWN, bytes, XDP_PASS);
		if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
			return count(ctx, STAT_PASS_NOT_IP, bytes, XDP_PASS);
		in = vv->ifindex;
		port = &vv->port;
		l3 += 4;
	} else if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6)) {
		return count(ctx, proto == bpf_htons(ETH_P_8021AD) ? STAT_PASS_VLAN_OTHER : STAT_PASS_NOT_IP,
			     bytes, XDP_PASS);
	} else {
		port = bpf_map_lookup_elem(&ifaces, &in);
		if (port && (port->flags & IFACE_F_TRUNK))
			return count(ctx, STAT_PASS_VLAN_UNKNOWN, bytes, XDP_PASS);
	}

	/*
	 * Route only frames addressed to the receiving port: a switch flooding
	 * unknown unicast, or a port in promiscuous mode, delivers frames for
	 * other hosts, which the kernel drops (PACKET_OTHERHOST) and XDP must
	 * not forward. Ports without an ifaces entry (not configured yet) are
	 * not checked.
	 */
	if (port && !mac_eq(eth->h_dest, port->mac))
		return count(ctx, STAT_PASS_OTHER_HOST, bytes, XDP_PASS);

	__u8 urpf_mode = URPF_OFF;
	__u16 rclass = 0;
	if (port) {
		urpf_mode = port->urpf;
		rclass = port->rule_class[0] | port->rule_class[1] << 8;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return fwd_v4(ctx, l3, data_end, bytes, in, urpf_mode, rclass);
	return fwd_v6(ctx, l3, data_end, bytes, in, urpf_mode, rclass);
}
