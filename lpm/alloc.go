package lpm

import (
	"cmp"
	"slices"
)

// block is a run of array entries [start, start+size); start 0: none.
type block struct {
	start, size uint32
}

func (b block) valid() bool { return b.start != 0 }

// alloc hands out blocks of 1..64 entries of one array: a reclaimed freed
// block (see Arena.Epoch) of that size, else the first fit of a larger one
// (its rest goes back to the free lists), else fresh space from the end.
type alloc struct {
	cap, next uint32
	freed     [65][]freedBlock // by size, oldest first
	freeLen   uint32           // entries in free lists
	epoch     *epochs
}

type freedBlock struct {
	start uint32
	epoch uint64 // freed while this epoch was current
}

func (a *alloc) get(size uint32) (block, bool) {
	if b, ok := a.take(size); ok {
		return b, true
	}
	// Freed blocks too small or not adjacent: merge the reclaimed ones.
	if a.compact() {
		return a.take(size)
	}
	return block{}, false
}

func (a *alloc) take(size uint32) (block, bool) {
	for c := size; c < uint32(len(a.freed)); c++ {
		l := a.freed[c]
		if len(l) == 0 || l[0].epoch > a.epoch.safe {
			continue
		}
		a.freed[c] = l[1:]
		a.freeLen -= c
		if c > size {
			rest := c - size
			a.freed[rest] = append(a.freed[rest], freedBlock{l[0].start + size, l[0].epoch})
			a.freeLen += rest
		}
		return block{l[0].start, size}, true
	}
	if a.next+size > a.cap {
		return block{}, false
	}
	b := block{a.next, size}
	a.next += size
	return b, true
}

// compact merges adjacent reclaimed free blocks (a run reaching the end of
// the used space gives it back) and reports whether anything merged.
func (a *alloc) compact() bool {
	var runs []block
	merged := false
	for size := range a.freed {
		keep := a.freed[size][:0]
		for _, f := range a.freed[size] {
			if f.epoch <= a.epoch.safe {
				runs = append(runs, block{f.start, uint32(size)})
				a.freeLen -= uint32(size)
			} else {
				keep = append(keep, f)
			}
		}
		a.freed[size] = keep
	}
	slices.SortFunc(runs, func(x, y block) int { return cmp.Compare(x.start, y.start) })
	var out []block
	for _, r := range runs {
		if n := len(out); n > 0 && out[n-1].start+out[n-1].size == r.start {
			out[n-1].size += r.size
			merged = true
			continue
		}
		out = append(out, r)
	}
	if n := len(out); n > 0 && out[n-1].start+out[n-1].size == a.next {
		a.next = out[n-1].start
		out = out[:n-1]
		merged = true
	}
	for _, r := range out {
		for r.size > 0 {
			c := min(r.size, uint32(len(a.freed)-1))
			a.freed[c] = append(a.freed[c], freedBlock{r.start, a.epoch.safe})
			a.freeLen += c
			r.start, r.size = r.start+c, r.size-c
		}
	}
	return merged
}

func (a *alloc) free(b block) {
	if !b.valid() {
		return
	}
	a.freed[b.size] = append(a.freed[b.size], freedBlock{b.start, a.epoch.current})
	a.epoch.lastFree = a.epoch.current
	a.freeLen += b.size
}

// epochs order frees against grace periods: a block freed in epoch e may
// be reused once every reader that could have seen it is gone, which is
// after a grace period that began once e had ended.
type epochs struct {
	current  uint64 // frees are tagged with it (from 1)
	safe     uint64 // blocks of epochs <= safe are reusable
	lastFree uint64 // epoch of the latest free
}
