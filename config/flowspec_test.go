package config

import (
	"strings"
	"testing"
)

func TestFlowspecKeys(t *testing.T) {
	const head = "[router]\nasn = 65000\nrouter-id = \"192.0.2.254\"\n\n[[neighbor]]\naddress = \"192.0.2.1\"\npeer-asn = 65001\n"
	c, err := Parse([]byte(head), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Neighbors[0]; n.Flowspec || !n.FlowspecValidate {
		t.Errorf("defaults: flowspec %v, flowspec-validate %v; want false, true", n.Flowspec, n.FlowspecValidate)
	}
	c, err = Parse([]byte(head+"flowspec = true\nflowspec-validate = false\nfamilies = [\"ipv4-unicast\", \"ipv6-flowspec\"]\n"), "f.toml")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Neighbors[0]; !n.Flowspec || n.FlowspecValidate {
		t.Errorf("set: flowspec %v, flowspec-validate %v", n.Flowspec, n.FlowspecValidate)
	}
	for src, want := range map[string]string{
		head + "families = [\"ipv4-flowspec\"]\n":              `f.toml:8: neighbor[0].families[0]: "ipv4-flowspec" needs flowspec = true`,
		head + "flowspec = true\nfamilies = [\"ipv4-flow\"]\n": `"ipv4-flow" is not one of ipv4-unicast, ipv6-unicast, ipv4-flowspec, ipv6-flowspec`,
		head + "Flowspec = true\n":                             "Flowspec",
	} {
		_, err := Parse([]byte(src), "f.toml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", src, err, want)
		}
	}
}
