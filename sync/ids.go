package sync

import (
	"slices"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// ids hands out small integer ids (map indexes). Id 0 is never used, so
// zero values mean "none". A freed id is reused only after cool: a packet
// that read a route just before it moved may still follow the old id, and
// must find what the id meant then, not another route's group.
type ids struct {
	max  uint32 // ids are < max; 0: unlimited
	cool time.Duration
	now  func() time.Time

	next  uint32
	freed []freedID // oldest first
}

type freedID struct {
	id uint32
	at time.Time
}

// get returns a fresh id, or 0 when every id below max is in use or
// cooling.
func (i *ids) get() uint32 {
	if len(i.freed) > 0 && i.clock().Sub(i.freed[0].at) >= i.cool {
		id := i.freed[0].id
		i.freed = i.freed[1:]
		return id
	}
	if i.max != 0 && i.next+1 >= i.max {
		return 0
	}
	i.next++
	return i.next
}

// reserve marks ids as in use (taken over from a previous instance): the
// ids below the largest that are not in use are free, cooling from now.
func (i *ids) reserve(inUse []uint32) {
	if len(inUse) == 0 {
		return
	}
	taken := make(map[uint32]bool, len(inUse))
	for _, id := range inUse {
		taken[id] = true
	}
	top := max(i.next, slices.Max(inUse))
	for id := i.next + 1; id <= top; id++ {
		if !taken[id] {
			i.put(id)
		}
	}
	i.next = top
}

// used is how many ids are held: handed out, or freed and still cooling.
func (i *ids) used() int { return int(i.next) - len(i.freed) }

func (i *ids) put(id uint32) {
	if id != 0 {
		i.freed = append(i.freed, freedID{id, i.clock()})
	}
}

func (i *ids) clock() time.Time {
	if i.now == nil {
		return time.Now()
	}
	return i.now()
}

// lists shares identical next-hop lists (the kernel-applied state of many
// routes) by id, refcounted.
type lists struct {
	byKey map[string]uint32
	byID  map[uint32]*nhList
	ids   ids
	freed func(key string) // called when a list's last user goes
}

type nhList struct {
	key  string
	nhs  []route.NextHop
	refs int
}

func newLists() lists {
	return lists{byKey: map[string]uint32{}, byID: map[uint32]*nhList{}}
}

func (l *lists) get(nhs []route.NextHop) uint32 { return l.getKey(route.Key(nhs), nhs) }

// getKey is get with the list's identity given: the list of a kernel
// nexthop group is the group, whatever its members are now (setNHs).
func (l *lists) getKey(k string, nhs []route.NextHop) uint32 {
	id, ok := l.byKey[k]
	if !ok {
		id = l.ids.get()
		l.byKey[k] = id
		l.byID[id] = &nhList{key: k, nhs: nhs}
	}
	l.byID[id].refs++
	return id
}

func (l *lists) put(id uint32) {
	x := l.byID[id]
	if x == nil {
		return
	}
	if x.refs--; x.refs > 0 {
		return
	}
	delete(l.byID, id)
	delete(l.byKey, x.key)
	l.ids.put(id)
	if l.freed != nil {
		l.freed(x.key)
	}
}

// setNHs changes the next hops of the list of key, if there is one.
func (l *lists) setNHs(key string, nhs []route.NextHop) {
	if id, ok := l.byKey[key]; ok {
		l.byID[id].nhs = nhs
	}
}

// nhs returns list id's next hops (nil for 0).
func (l *lists) nhs(id uint32) []route.NextHop {
	if x := l.byID[id]; x != nil {
		return x.nhs
	}
	return nil
}
