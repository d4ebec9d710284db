// Package bpf holds xdprouter's XDP forwarder (fwd.c) and Datapath, the Go
// type that loads it, attaches it to interfaces and fills its maps.
//
// The generated fwd_x86_bpfel.go and fwd_x86_bpfel.o are committed so that
// building needs no clang; regenerate with `go generate ./bpf/` after
// changing fwd.c or fwd.h (CI regenerates and fails on a diff).
package bpf

//go:generate go tool bpf2go -target amd64 -type lpm_v4_key -type lpm_v6_key -type route_val -type route_type -type nhg -type nexthop -type nh_flags -type neigh_key -type neigh_val -type iface -type iface_flags -type vlan_key -type vlan_val -type stat -type counter -type lpm_pair -type lpm_node -type nh_gateway -type pin_meta -type urpf_mode -type filter_field -type filter_table -type filter_frag -type filter_action -type filter_flags -type filter_bits -type filter_key -type filter_port_key -type filter_rule -type filter_meta -type filter_counter -type filter_bucket -type prule -type rule_list -type rule_src_key -type rule_meta -type rule_action -type rule_flags -type rule_verdict -type local_bits -type trace_cfg -type trace_state -type trace_event fwd fwd.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall
