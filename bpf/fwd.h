/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared between the XDP forwarder (fwd.c) and the Go control plane.
 * Every struct and enum here is exported to Go by bpf2go (see gen.go):
 * change the layout only together with bpf/datapath.go.
 */
#ifndef XDPROUTER_FWD_H
#define XDPROUTER_FWD_H

#include <linux/types.h>

#define MAX_ECMP 16

/* Default map sizes; the Go loader may override max_entries before load. */
#define DEFAULT_MAX_ROUTES_V4 2000000
#define DEFAULT_MAX_ROUTES_V6 500000
#define DEFAULT_MAX_GROUPS 65536
#define DEFAULT_MAX_NEXTHOPS 65536
#define DEFAULT_MAX_NEIGHBORS 262144
#define DEFAULT_MAX_IFACES 1024

/* LPM trie keys: prefixlen first, address in network byte order. */
struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr;
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

enum route_type {
	ROUTE_UNICAST = 0,  /* forward via next-hop group route_val.nhg */
	ROUTE_BLACKHOLE,    /* XDP_DROP */
	ROUTE_UNREACHABLE,  /* unreachable/prohibit: kernel sends the ICMP error */
	ROUTE_LOCAL,        /* destination is an address of the router */
	ROUTE_KERNEL,       /* only the kernel can forward it (encap, route MTU, ...) */
};

struct route_val {
	__u32 nhg;
	__u8 type; /* enum route_type */
	__u8 pad[3];
};

/*
 * Compiled lookup structure (lpm/ builds it; see its package comment):
 * top entries for the first 18 address bits, 64-way node records, leaves.
 * Top entries and leaves are 32-bit, stored two per array element
 * (array values are 8-byte aligned). A top entry with LPM_LEAF set is a
 * leaf; otherwise it is a node record index. A leaf is 0 (no route) or
 * (route_type + 1) << 24 | nhg.
 */
#define LPM_LEAF 0x80000000u
#define LPM_TOP_BITS 18
/* Sized for 1M IPv4 and 250k IPv6 routes with churn (docs/lpm.md). */
#define DEFAULT_LPM_RECORDS_V4 1100000
#define DEFAULT_LPM_LEAVES_V4 (2000000 / 2)
#define DEFAULT_LPM_RECORDS_V6 750000
#define DEFAULT_LPM_LEAVES_V6 (1000000 / 2)

struct lpm_pair {
	__u32 v[2];
};

struct lpm_node {
	__u64 vector;     /* slots that are nodes */
	__u64 leafvec;    /* slots where a run of equal leaves starts */
	__u32 leaf_base;  /* leaf index of the first run */
	__u32 child_base; /* record index of the first child */
};

/* Next-hop group (ECMP set), indexed by group id. */
struct nhg {
	__u32 count;
	__u32 nh[MAX_ECMP];
};

enum nh_flags {
	NH_F_RESOLVED = 1 << 0,  /* dmac is valid */
	NH_F_CONNECTED = 1 << 1, /* look up neighbors with (ifindex, packet dst) */
	NH_F_PORT = 1 << 2,      /* ifindex is a router port: smac and mtu are valid */
};

/*
 * The egress port's source MAC and MTU are copied in from its ifaces entry
 * by the Go side (and rewritten when the port changes), so the egress path
 * needs no ifaces lookup. Without NH_F_PORT the port is not a router port
 * and packets pass to the kernel (egress_not_xdp).
 */
struct nexthop {
	__u32 ifindex;
	__u8 dmac[6];
	__u8 flags; /* enum nh_flags */
	__u8 pad;
	__u8 smac[6];
	__u16 pad2;
	__u32 mtu;
};

/* A next hop's gateway (IPv4-mapped for IPv4); all zero: connected. */
struct nh_gateway {
	__u8 addr[16];
};

/* Pinned-state identity: see layoutVersion in bpf/pin.go. */
struct pin_meta {
	__u32 magic;
	__u32 version;
};

/* IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). */
struct neigh_key {
	__u32 ifindex;
	__u8 addr[16];
};

struct neigh_val {
	__u8 mac[6];
	__u8 pad[2];
};

/*
 * A router port: its MAC, checked on ingress. Its MAC and MTU are also
 * copied into the next hops through it (struct nexthop) for egress.
 */
struct iface {
	__u8 mac[6];
	__u16 pad;
	__u32 mtu;
};

/* One index per action/reason; the Go side names them (stats.go). */
enum stat {
	STAT_REDIRECT = 0,
	STAT_DROP_BLACKHOLE,
	STAT_PASS_NOT_IP,
	STAT_PASS_MALFORMED,
	STAT_PASS_LOCAL,
	STAT_PASS_TTL,
	STAT_PASS_IP_OPTIONS,
	STAT_PASS_IPV6_EXT,
	STAT_PASS_LINKLOCAL_MCAST,
	STAT_PASS_NO_ROUTE,
	STAT_PASS_UNREACHABLE,
	STAT_PASS_NO_NEXTHOP,
	STAT_PASS_NO_NEIGH,
	STAT_PASS_TOO_BIG,
	STAT_PASS_EGRESS,
	STAT_PASS_OTHER_HOST,
	STAT_PASS_KERNEL_ROUTE,
	STAT_DROP_MARTIAN_SRC,
	STAT_ABORTED,
	STAT__MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* XDPROUTER_FWD_H */
