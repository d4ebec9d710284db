package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// referenceKey is a key's entry in docs/CONFIG.md: - **`section.key`** = ...
var referenceKey = regexp.MustCompile("(?m)^- \\*\\*`([a-z0-9.-]+)`\\*\\*")

// TestConfigReference: docs/CONFIG.md documents every key example.toml
// sets, and no other (TestExample checks that the example sets every key
// of the schema).
func TestConfigReference(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range referenceKey.FindAllStringSubmatch(string(doc), -1) {
		if documented[m[1]] {
			t.Errorf("docs/CONFIG.md documents %s twice", m[1])
		}
		documented[m[1]] = true
	}
	c, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	inExample := exampleLeafKeys(c)
	if len(inExample) < 100 {
		t.Fatalf("only %d keys in example.toml: %v", len(inExample), inExample)
	}
	for _, k := range inExample {
		// A peer group takes the neighbor keys, documented once.
		if nk, ok := strings.CutPrefix(k, "peer-group."); ok && nk != "name" {
			k = "neighbor." + nk
		}
		if !documented[k] {
			t.Errorf("example.toml sets %s, docs/CONFIG.md does not document it", k)
		}
	}
	for k := range documented {
		if !slices.Contains(inExample, k) {
			t.Errorf("docs/CONFIG.md documents %s, example.toml does not set it", k)
		}
	}
}

// exampleLeafKeys are the key paths of c's file without array indexes,
// tables ([router], [[neighbor]], ...) left out.
func exampleLeafKeys(c *Config) []string {
	var all []string
	for p := range c.pos.present {
		k := stripIndexes(p)
		if strings.HasPrefix(k, "dataplane.urpf-ports.") { // port names
			k = "dataplane.urpf-ports"
		}
		if !slices.Contains(all, k) {
			all = append(all, k)
		}
	}
	var out []string
	for _, k := range all {
		if !slices.ContainsFunc(all, func(o string) bool { return strings.HasPrefix(o, k+".") }) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
