/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared between the XDP forwarder (fwd.c) and the Go control plane.
 * Every struct and enum here is exported to Go by bpf2go (see gen.go):
 * change the layout only together with bpf/datapath.go.
 */
#ifndef XDPROUTER_FWD_H
#define XDPROUTER_FWD_H

#include <linux/types.h>

#define MAX_ECMP 64
/*
 * Resilient hashing: a flow's hash picks one of NHG_BUCKETS buckets, the
 * bucket names a member. Go (bpf/resilient.go) assigns buckets so that a
 * member leaving moves only its own buckets and a member joining takes
 * an even share from the others.
 */
#define NHG_BUCKETS 256

/* Default map sizes; the Go loader may override max_entries before load. */
#define DEFAULT_MAX_ROUTES_V4 2000000
#define DEFAULT_MAX_ROUTES_V6 500000
#define DEFAULT_MAX_GROUPS 65536
#define DEFAULT_MAX_NEXTHOPS 65536
#define DEFAULT_MAX_NEIGHBORS 262144
#define DEFAULT_MAX_IFACES 1024
#define DEFAULT_MAX_VLANS 4096

/*
 * Routing tables: XDP keeps one lookup structure per kernel table it
 * mirrors, by slot (Go maps kernel table ids to slots: table_ids). Slot 0
 * is the main table (254).
 */
#define MAX_TABLES 16

/*
 * LPM trie keys: prefixlen first (32 table bits + the prefix's length),
 * the table slot, the address in network byte order.
 */
struct lpm_v4_key {
	__u32 prefixlen;
	__u32 table;
	__u32 addr;
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u32 table;
	__u8 addr[16];
};

enum route_type {
	ROUTE_UNICAST = 0,  /* forward via next-hop group route_val.nhg */
	ROUTE_BLACKHOLE,    /* XDP_DROP */
	ROUTE_UNREACHABLE,  /* unreachable/prohibit: kernel sends the ICMP error */
	ROUTE_LOCAL,        /* destination is an address of the router */
	ROUTE_KERNEL,       /* only the kernel can forward it (encap, route MTU, ...) */
	ROUTE_THROW,        /* policy routing: no route here, the next rule applies */
};

struct route_val {
	__u32 nhg;
	__u8 type; /* enum route_type */
	__u8 plen; /* the route's prefix length (suppress_prefixlength) */
	__u8 pad[2];
};

/*
 * Compiled lookup structure (lpm/ builds it; see its package comment):
 * top entries for the first 18 address bits, 64-way node records, leaves.
 * Top entries and leaves are 32-bit, stored two per array element
 * (array values are 8-byte aligned). A top entry with LPM_LEAF set is a
 * leaf; otherwise it is a node record index. A leaf is 0 (no route) or
 * (route_type + 1) << LPM_KIND_SHIFT | prefix length << LPM_PLEN_SHIFT |
 * nhg (see lpm.NewLeaf). Each table slot has its own top entries
 * (slot << LPM_TOP_BITS + the address's first 18 bits); nodes and leaves
 * are shared.
 */
#define LPM_LEAF 0x80000000u
#define LPM_KIND_SHIFT 28
#define LPM_PLEN_SHIFT 20
#define LPM_GROUP_MASK 0xfffffu
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

/*
 * Next-hop group (ECMP set), indexed by group id. nh[0..count) are the
 * members; the slots past count repeat them, so every slot names a
 * member (a torn read of an entry being rewritten still picks one).
 */
struct nhg {
	__u32 count;
	__u32 nh[MAX_ECMP];
	__u8 bucket[NHG_BUCKETS]; /* slot in nh of each hash bucket */
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
	__u16 vid; /* NH_F_PORT: the port's VLAN id (a VLAN port: tagged out of its parent), else 0 */
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
	__u32 hash_seed; /* the router's ECMP hash seed, kept across restarts */
	__u32 pad;
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
	__u8 urpf; /* enum urpf_mode */
	__u8 flags; /* enum iface_flags */
	__u32 mtu;
	__u8 rule_class[2]; /* per rule bank: the port's class (struct rule_meta) */
	__u16 vid; /* a VLAN port: its VLAN id (its parent in tx_ports), else 0 */
};

enum iface_flags {
	/*
	 * Not a router port, but the parent of VLAN ports (XDP is attached to
	 * it for them): its untagged frames go to the kernel (vlan_unknown).
	 */
	IFACE_F_TRUNK = 1 << 0,
};

/*
 * 802.1Q VLAN ports: XDP runs on the parent (the real device). A tagged
 * frame whose (parent ifindex, VLAN id) is in vlans arrives on the VLAN
 * port named by the value (its ifindex: the ingress port of uRPF, rules
 * and filters). On egress, tx_ports maps the VLAN port to its parent and
 * the next hop's vid says which tag to push.
 */
struct vlan_key {
	__u32 ifindex; /* the parent */
	__u32 vid;
};

/* The VLAN port and a copy of its ifaces entry: one lookup per tagged frame. */
struct vlan_val {
	__u32 ifindex;
	struct iface port;
};

/* Reverse-path check of a router port (RFC 3704), as rp_filter 1 and 2. */
enum urpf_mode {
	URPF_OFF = 0,
	URPF_STRICT, /* the source's route must go out of the ingress port */
	URPF_LOOSE,  /* the source must have a route */
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
	STAT_DROP_MARTIAN_DST,
	STAT_DROP_URPF,
	STAT_DROP_BLACKHOLE_SRC,
	STAT_PASS_URPF_KERNEL,
	STAT_DROP_FILTER,
	STAT_PASS_FILTER,
	STAT_DROP_RATE_LIMIT,
	STAT_DROP_RULE,        /* a blackhole policy rule */
	STAT_PASS_RULE,        /* an unreachable/prohibit rule: the kernel answers */
	STAT_PASS_RULE_KERNEL, /* a rule XDP cannot evaluate (fwmark, oif, ...) */
	STAT_PASS_VLAN_UNKNOWN, /* a VLAN id that is no router port, or untagged on a trunk-only parent */
	STAT_PASS_VLAN_OTHER,   /* 802.1ad or stacked tags: the kernel's */
	STAT__MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * Filters (filter/ compiles them; see its package comment). Each packet
 * field maps to a class, each class to a bitmap of the rules matching it;
 * the AND of the packet's bitmaps is the set of rules it matches, the
 * lowest bit the first rule. Everything exists twice (banks): Go writes
 * the bank packets do not use, then flips filter_meta.bank.
 */
#define FILTER_MAX 1024
#define FILTER_WORDS (FILTER_MAX / 64)
#define FILTER_CLASSES 32768 /* bitmaps per bank; class 0 matches nothing */
#define FILTER_MATCHES 8     /* matching rules applied per packet, at most */

enum filter_field {
	FF_DST = 0,
	FF_SRC,
	FF_PROTO,
	FF_DPORT,
	FF_SPORT,
	FF_PORT,
	FF_ICMP_TYPE,
	FF_ICMP_CODE,
	FF_TCP_FLAGS,
	FF_DSCP,
	FF_FRAG,
	FF_LEN,
	FF_INGRESS,
	FF_FAMILY, /* rules of one family: filter_meta.family */
	FF__MAX,
};

/*
 * Offsets of the value → class tables in a bank of filter_class (stored
 * two per element). "None" entries: a packet without the field (no ports:
 * not TCP/UDP/SCTP or a later fragment; not ICMP; not TCP).
 */
enum filter_table {
	FT_PROTO = 0,                /* 256 */
	FT_DPORT = FT_PROTO + 256,   /* 65536 ports + none */
	FT_SPORT = FT_DPORT + 65537,
	FT_PORT = FT_SPORT + 65537,
	FT_ICMP_TYPE = FT_PORT + 65537, /* 256 + none */
	FT_ICMP_CODE = FT_ICMP_TYPE + 257,
	FT_TCP_FLAGS = FT_ICMP_CODE + 257, /* 256 + none */
	FT_DSCP = FT_TCP_FLAGS + 257,      /* 64 */
	FT_FRAG = FT_DSCP + 64,            /* enum filter_frag */
	FT_LEN = FT_FRAG + 4,              /* 65536 */
	FT__SIZE = FT_LEN + 65536,
};

enum filter_frag {
	FRAG_NONE = 0,
	FRAG_FIRST,
	FRAG_LATER,
};

enum filter_action {
	FA_NONE = 0,
	FA_DROP,
	FA_PASS,
	FA_RATE_LIMIT,
	FA_COUNT,
	FA_ACCEPT,
};

enum filter_flags {
	FR_F_CONTINUE = 1 << 0, /* later rules apply too */
	FR_F_REMARK = 1 << 1,   /* rewrite DSCP */
	FR_F_REDIRECT = 1 << 2, /* forward by the route to redirect */
	FR_F_BYTES = 1 << 3,    /* the rate is in bytes, not packets */
};

struct filter_bits {
	__u64 w[FILTER_WORDS];
};

/* Prefix → class; tag = bank << 2 | (source ? 2 : 0) | (IPv6 ? 1 : 0). */
struct filter_key {
	__u32 prefixlen; /* 32 + address bits */
	__u32 tag;
	__u8 addr[16];
};

struct filter_port_key {
	__u32 bank;
	__u32 ifindex; /* 0: ports not listed */
};

struct filter_rule {
	__u8 action; /* enum filter_action */
	__u8 flags;  /* enum filter_flags */
	__u8 dscp;
	__u8 pad;
	__u32 slot;        /* counter and token bucket */
	__u64 ps_per_unit; /* rate-limit: picoseconds per packet or byte, per CPU */
	__u64 burst_ns;
	__u8 redirect[16]; /* IPv4-mapped for IPv4 */
};

struct filter_meta {
	__u32 bank;
	__u32 pad;
	__u32 fields[2]; /* per bank: bit (1 << enum filter_field) per field in use */
	__u32 words[2];  /* per bank: bitmap words in use */
	__u32 rules[2];  /* per bank: rules */
	__u32 family[2][2]; /* per bank: class of the rules IPv4 (0), IPv6 (1) packets may match */
};

struct filter_counter {
	__u64 packets;
	__u64 bytes;
	__u64 dropped; /* by the rule's rate limit */
};

struct filter_bucket {
	__u64 tat; /* theoretical arrival time (GCRA), ns */
};

/*
 * Policy rules (ip rule), compiled by Go (bpf/rules.go) per bank and
 * family. A packet's candidate rules are found without walking the list:
 * its source address picks a source class (rule_src), its ingress port an
 * interface class (struct iface.rule_class); the pair names a list of the
 * rules whose source and interface selectors may match, in priority
 * order. The other selectors are checked on the candidates. With no rule
 * beyond the defaults (n == 0), XDP looks up the main table only.
 */
#define MAX_RULES 256   /* per bank and family */
#define RULE_CANDS 31   /* candidates per list */
#define RULE_LISTS 8192 /* per bank and family: interface classes x source classes */
#define RULE_NONE 0xffff

enum rule_action {
	RA_LOOKUP = 0,   /* table: a route there decides, else the next rule */
	RA_GOTO,         /* go on at rule goto_idx */
	RA_NOP,
	RA_BLACKHOLE,    /* drop */
	RA_UNREACHABLE,  /* unreachable, prohibit: the kernel sends the error */
	RA_KERNEL,       /* XDP cannot evaluate the rule: pass to the kernel */
	RA_LOCAL,        /* lookup local: a local destination (main's local routes) goes to the kernel */
};

/* What the rules decided for a packet (rules_eval). */
enum rule_verdict {
	RV_ROUTE = 0,    /* rule_req.rt is the route */
	RV_NO_ROUTE,
	RV_BLACKHOLE,
	RV_UNREACHABLE,
	RV_KERNEL,
	RV_LOCAL,
};

enum rule_flags {
	RF_INVERT = 1 << 0,
	RF_SRC = 1 << 1,   /* checked here only for inverted rules */
	RF_DST = 1 << 2,
	RF_IIF = 1 << 3,   /* likewise */
	RF_PROTO = 1 << 4,
	RF_SPORT = 1 << 5,
	RF_DPORT = 1 << 6,
	RF_TOS = 1 << 7,
};

struct prule {
	__u8 action;   /* enum rule_action */
	__u8 flags;    /* enum rule_flags */
	__u8 table;    /* RA_LOOKUP: the slot */
	__u8 suppress; /* 0: none; else a result shorter than suppress is rejected */
	__u8 proto;
	__u8 tos;      /* IPv4: (tos & tos_mask) == tos; IPv6: traffic class */
	__u8 tos_mask;
	__u8 pad;
	__u16 sport_lo, sport_hi, dport_lo, dport_hi;
	__u16 goto_idx; /* RA_GOTO: the target rule, RULE_NONE if there is none */
	__u16 pad2;
	__u32 iif;
	__u8 src[16], src_mask[16]; /* IPv4 in the first 4 bytes */
	__u8 dst[16], dst_mask[16];
};

struct rule_list {
	__u16 n;
	__u16 idx[RULE_CANDS];
};

/* Source address -> source class; tag = bank << 1 | IPv6. */
struct rule_src_key {
	__u32 prefixlen; /* 32 + address bits */
	__u32 tag;
	__u8 addr[16];
};

/*
 * A Bloom filter (one hash) of the router's addresses: a clear bit means
 * "not local" without touching the main table, whose walk is a cache miss
 * or two with a full table. Go sets bits before a local route is written
 * and rebuilds the words after deletes.
 */
#define LOCAL_BLOOM_BITS 4096

struct local_bits {
	__u64 w[LOCAL_BLOOM_BITS / 64];
};

struct rule_meta {
	__u32 bank;
	__u32 n[2][2];    /* per bank and family: rules (0: the main table only) */
	__u32 nsrc[2][2]; /* per bank and family: source classes (1: no source selector) */
	__u32 lo_class[2]; /* per bank: the class of lo (uRPF looks up from lo) */
};

/*
 * Tracing (xdprouterctl trace): while the global trace_on is set, every
 * verdict counted also goes through trace_emit, which samples packets
 * matching trace_cfg into the ring buffer trace_ring as trace_events.
 * With trace_on clear the cost is one load and a branch per packet.
 */
struct trace_cfg {
	__u32 sample;  /* 1 in sample matching packets (0 or 1: each) */
	__u32 budget;  /* events per second per CPU (0: no limit) */
	__u8 proto;    /* 0: any */
	__u8 family;   /* 0: any, 4 or 6 */
	__u8 pad[2];
	__u8 src[16], src_mask[16]; /* IPv4 in the first 4 bytes */
	__u8 dst[16], dst_mask[16];
};

/* Per CPU: sampling and budget state, and events the ring had no room for. */
struct trace_state {
	__u64 seen;   /* packets matching the filter */
	__u64 window; /* the current second (ktime / 1e9) */
	__u64 lost;
	__u32 sent;   /* events in the current second */
	__u32 pad;
};

struct trace_event {
	__u64 ts; /* bpf_ktime_get_ns */
	__u32 ingress;
	__u32 egress; /* the redirect target; 0 unless redirected */
	__u32 len;    /* frame length */
	__u8 stat;    /* enum stat */
	__u8 action;  /* XDP_* */
	__u8 proto;
	__u8 v6;      /* 0: IPv4, 1: IPv6, 2: not IP */
	__u16 sport, dport; /* host order; 0 without ports */
	__u8 tos, ttl;      /* as the frame has them when counted */
	__u8 pad[2];
	__u8 src[16], dst[16]; /* IPv4 in the first 4 bytes */
	__u8 smac[6], dmac[6]; /* the frame's MACs when counted (redirect: rewritten) */
};

#endif /* XDPROUTER_FWD_H */
