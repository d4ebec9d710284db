/* SPDX-License-Identifier: GPL-2.0 */
/* Constants shared by trafficgen.c and trafficgen.go (keep them equal). */
#ifndef XDPROUTER_TRAFFICGEN_H
#define XDPROUTER_TRAFFICGEN_H

enum gen_mode {
	GEN_FIXED = 0,
	GEN_RANDOM = 1,
};

#define HDR_LEN 42 /* Ethernet 14 + IPv4 20 + UDP 8 */
#define HDR_WORDS 6
#define IP_CHECK_OFF 24
#define IP_SADDR_OFF 26
#define IP_DADDR_OFF 30
#define UDP_SPORT_OFF 34

#define PREFIX_BASE 0x40000000 /* 64.0.0.0/4 */
#define PREFIX_MASK 0xfffff    /* 2^20 /24 prefixes */
#define PREFIX_STEP 0x9e3b5    /* odd: i -> i*STEP mod 2^20 is a bijection */

#endif
