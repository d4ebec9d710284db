package fib

import (
	"errors"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// OwnRule is a kernel policy rule of xdprouterd's own, marked with its
// protocol (FRA_PROTOCOL) so that it is told apart from the operator's:
// "iif Iif lookup Table" at Priority, or, with Table 0, "iif Iif
// unreachable" (VRF-lite: traffic of an instance's port never falls
// through to the main table).
type OwnRule struct {
	Family   int // 4 or 6
	Priority int
	Iif      string
	Table    int // 0: unreachable
}

func (r OwnRule) String() string {
	act := fmt.Sprintf("lookup %d", r.Table)
	if r.Table == 0 {
		act = "unreachable"
	}
	return fmt.Sprintf("ipv%d %d: iif %s %s", r.Family, r.Priority, r.Iif, act)
}

// OwnRules lists the kernel's policy rules marked with the table's
// protocol, both families.
func (t *Table) OwnRules() ([]OwnRule, error) {
	proto, err := protocol(t.Protocol)
	if err != nil {
		return nil, err
	}
	var out []OwnRule
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := t.h.RuleListFiltered(fam, nil, 0)
		for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 5; try++ {
			rs, err = t.h.RuleListFiltered(fam, nil, 0)
		}
		if err != nil {
			return nil, fmt.Errorf("list policy rules: %w", err)
		}
		for _, r := range rs {
			if int(r.Protocol) != proto {
				continue
			}
			o := OwnRule{Family: 4, Priority: r.Priority, Iif: r.IifName, Table: max(r.Table, 0)}
			if fam == unix.AF_INET6 {
				o.Family = 6
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// SetOwnRules makes the kernel's rules of the table's protocol exactly
// want: missing ones are added first, then those not wanted are deleted
// (a rule that changes never leaves a gap). It returns what it found and
// every error, joined; what succeeded stays.
func (t *Table) SetOwnRules(want []OwnRule) (added, deleted []OwnRule, err error) {
	have, err := t.OwnRules()
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, w := range want {
		if slices.Contains(have, w) {
			continue
		}
		if err := t.h.RuleAdd(t.netlinkRule(w)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add rule %s: %w", w, err))
			continue
		}
		added = append(added, w)
	}
	for _, h := range have {
		if slices.Contains(want, h) {
			continue
		}
		if err := t.h.RuleDel(t.netlinkRule(h)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete rule %s: %w", h, err))
			continue
		}
		deleted = append(deleted, h)
	}
	return added, deleted, errors.Join(errs...)
}

func (t *Table) netlinkRule(o OwnRule) *netlink.Rule {
	proto, _ := protocol(t.Protocol)
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	if o.Family == 6 {
		r.Family = unix.AF_INET6
	}
	r.Priority = o.Priority
	r.IifName = o.Iif
	r.Protocol = uint8(proto)
	if o.Table == 0 {
		r.Type = unreachableAction
		r.Table = 0
	} else {
		r.Table = o.Table
	}
	return r
}

// unreachableAction is FR_ACT_UNREACHABLE, the rule action "unreachable".
const unreachableAction = 7
