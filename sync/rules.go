package sync

import (
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// Policy rules: the kernel's ip rule list (Snapshot.Rules, route.RuleSet)
// is kept as received and handed to the Datapath (SetRules) after the
// routes of a batch are applied — once after the first snapshot, then
// whenever the list or the links (rules select the ingress interface by
// name) changed. A failed call is retried with the next apply.

// setRules records the kernel's complete rule list.
func (st *state) setRules(rules []route.Rule) {
	if slices.EqualFunc(st.rules, rules, sameRule) {
		return
	}
	st.rules = slices.Clone(rules)
	st.rulesDirty, st.rulesChanged = true, true
}

// sameRule compares every field (reflect: so that fields added to
// route.Rule are never missed; rule lists are short).
func sameRule(a, b route.Rule) bool { return reflect.DeepEqual(a, b) }

// linkNames maps the names of the links to their indexes.
func (st *state) linkNames() map[string]int {
	m := make(map[string]int, len(st.links))
	for _, l := range st.links {
		if l.Name != "" {
			m[l.Name] = l.Index
		}
	}
	return m
}

// applyRules calls SetRules if the rules or the link names changed since
// it last succeeded (or it never did).
func (st *state) applyRules() {
	if !st.rulesDirty {
		return
	}
	names := st.linkNames()
	if st.rulesSet && maps.Equal(names, st.rulesLinks) && !st.rulesChanged {
		st.rulesDirty = false // links came and went as they were
		return
	}
	// names is never written again: the Datapath may keep the function.
	err := st.opt.Datapath.SetRules(st.rulesForXDP(), func(name string) int { return names[name] })
	if err != nil {
		// Retried with the next apply (every second at the latest).
		if time.Since(st.rulesFailLog) >= failLogEvery {
			st.rulesFailLog = time.Now()
			st.log.Error("sync: set policy rules in XDP failed, retrying", "rules", len(st.rules), "err", err)
		}
		return
	}
	st.rulesDirty, st.rulesChanged, st.rulesSet = false, false, true
	st.rulesLinks = names
}
