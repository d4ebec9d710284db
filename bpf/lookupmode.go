package bpf

import (
	"fmt"
	"strings"
)

// LookupMode selects the route lookup structure the XDP program walks. Both
// are kept up to date; the mode only decides which one packets use.
type LookupMode int

const (
	// LookupCompiled walks the compiled structure (the default).
	LookupCompiled LookupMode = iota
	// LookupTrie uses the kernel's BPF LPM trie (the reference).
	LookupTrie
)

// String returns the name accepted by ParseLookup.
func (m LookupMode) String() string {
	switch m {
	case LookupCompiled:
		return "compiled"
	case LookupTrie:
		return "trie"
	}
	return fmt.Sprintf("LookupMode(%d)", int(m))
}

// ParseLookup parses "compiled" or "trie".
func ParseLookup(s string) (LookupMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "compiled":
		return LookupCompiled, nil
	case "trie":
		return LookupTrie, nil
	}
	return 0, fmt.Errorf("unknown lookup %q (want compiled or trie)", s)
}
