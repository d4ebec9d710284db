package bpf

import "slices"

// Resilient hashing (fwd.h, NHG_BUCKETS). XDP maps a flow's hash to one
// of a group's buckets and the bucket to a member, so what a membership
// change does to flows is decided here, by how buckets are reassigned:
//
//   - a member leaving frees only its own buckets, dealt round-robin to
//     the members left (the others keep theirs, so their flows stay);
//   - a member joining takes an even share, each other member giving up
//     only what it holds beyond its new share;
//   - every member ends with NHGBuckets/n buckets or one more, so the
//     split stays as even as the modulo it replaces.
//
// A group is derived from what a group held before (the same group
// rewritten, or the group a route used before it moved to a new one:
// Datapath.SetGroupFrom), by next-hop id, so the members' order and their
// slots do not matter. With the same members the table does not change,
// which keeps flows where they were across a daemon restart (with the
// hash seed, pin.go).

// NHGBuckets is the number of hash buckets per group (NHG_BUCKETS).
const NHGBuckets = len(fwdNhg{}.Bucket)

// resilientBuckets returns the bucket table (member index per bucket) of
// members, given the next hop each bucket held before (prev; 0 or an id
// not in members: none). At most MaxECMP members; an id listed twice
// keeps its buckets on its first slot.
func resilientBuckets(prev *[NHGBuckets]uint32, members []uint32) (out [NHGBuckets]uint8) {
	n := len(members)
	if n == 0 {
		return out
	}
	slot := make(map[uint32]int, n)
	for i, id := range members {
		if _, dup := slot[id]; !dup {
			slot[id] = i
		}
	}
	owner := make([]int, NHGBuckets)
	have := make([]int, n)
	for b := range owner {
		owner[b] = -1
		if prev == nil {
			continue
		}
		if i, ok := slot[prev[b]]; ok && prev[b] != 0 {
			owner[b] = i
			have[i]++
		}
	}
	// Shares: NHGBuckets/n each, one more for the remainder's members
	// that hold the most already (fewest moves; ties: lower slot).
	quota := make([]int, n)
	base, extra := NHGBuckets/n, NHGBuckets%n
	for i := range quota {
		quota[i] = base
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return have[b] - have[a] })
	for _, i := range order[:extra] {
		quota[i]++
	}
	// Keep what fits the share; free the rest.
	kept := make([]int, n)
	for b, i := range owner {
		if i < 0 {
			continue
		}
		if kept[i] < quota[i] {
			kept[i]++
		} else {
			owner[b] = -1
		}
	}
	// Deal the free buckets round-robin to the members under their share.
	next := 0
	for b, i := range owner {
		if i < 0 {
			for kept[next] >= quota[next] {
				next = (next + 1) % n
			}
			i = next
			kept[i]++
			owner[b] = i
			next = (next + 1) % n
		}
		out[b] = uint8(i)
	}
	return out
}

// bucketMembers returns the next hop of each bucket of g (all 0 for an
// empty group).
func bucketMembers(g *fwdNhg) *[NHGBuckets]uint32 {
	var out [NHGBuckets]uint32
	if g.Count == 0 || g.Count > MaxECMP {
		return &out
	}
	for b, s := range g.Bucket {
		out[b] = g.Nh[int(s)%MaxECMP]
	}
	return &out
}
