package config

import (
	"strings"
	"testing"
)

const vrfBase = `[router]
asn = 65000
router-id = "192.0.2.254"

[dataplane]
interfaces = ["eth1", "eth2", "eth3", "eth4"]

[[vrf]]
name = "red"
table = 100
interfaces = ["eth1", "eth3"]

[[vrf]]
name = "blue"
table = 200
interfaces = ["eth2", "eth4"]
route-distinguisher = "192.0.2.254:7"
rule-priority = 2000

[[neighbor]]
address = "10.0.3.2"
peer-asn = 65001
vrf = "red"
`

func TestVRFDefaults(t *testing.T) {
	c, err := Parse([]byte(vrfBase), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.VRFs) != 2 {
		t.Fatalf("vrfs: %+v", c.VRFs)
	}
	red, blue := c.VRFs[0], c.VRFs[1]
	if red.RouteDistinguisher != "65000:100" || red.RulePriority != DefaultVRFRulePriority {
		t.Errorf("red defaults: %+v", red)
	}
	if blue.RouteDistinguisher != "192.0.2.254:7" || blue.RulePriority != 2000 {
		t.Errorf("blue: %+v", blue)
	}
	if c.Neighbors[0].VRF != "red" || c.VRFOf("red") == nil || c.VRFOf("green") != nil {
		t.Errorf("neighbor vrf: %+v", c.Neighbors[0])
	}
	pt := c.PortTables()
	if pt["eth1"] != 100 || pt["eth4"] != 200 || len(pt) != 4 {
		t.Errorf("port tables: %v", pt)
	}
	// Default priorities step by VRFRulePriorityStep.
	c2, err := Parse([]byte(strings.Replace(vrfBase, "rule-priority = 2000\n", "", 1)), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p := c2.VRFs[1].RulePriority; p != DefaultVRFRulePriority+VRFRulePriorityStep {
		t.Errorf("second default priority %d", p)
	}
}

func TestVRFErrors(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"missing table", "table = 100\n", "x.toml:8: vrf[0].table: must be set"},
		{"main table", "table = 100\n", "x.toml:10: vrf[0].table: 254 is one of the kernel's tables"},
		{"fib table", "", "x.toml:10: vrf[0].table: 300 is fib.table"},
		{"duplicate table", "table = 200\n", "x.toml:15: vrf[1].table: 200 is already the table of vrf[0]"},
		{"duplicate name", `name = "blue"` + "\n", `x.toml:14: vrf[1].name: "blue" is already the name of vrf[0]`},
		{"not a port", "", `x.toml:11: vrf[0].interfaces[1]: "eth9" is not a router port`},
		{"port twice", "", `x.toml:16: vrf[1].interfaces[0]: "eth1" is already a port of vrf[0]`},
		{"bad rd", "", `x.toml:17: vrf[1].route-distinguisher: "x:1" is not a route distinguisher`},
		{"rd 4-byte asn", "", `x.toml:17: vrf[1].route-distinguisher: "4200000000:70000": with a 4-byte ASN the number is 0..65535`},
		{"priority range", "", "x.toml:18: vrf[1].rule-priority: must be 1..32764"},
		{"priority overlap", "", "x.toml:18: vrf[1].rule-priority: 1001 overlaps vrf[0]'s rules"},
		{"unknown vrf", "", `x.toml:23: neighbor[0].vrf: no [[vrf]] is named "green"`},
		{"unknown key", "", "x.toml:12: vrf[0].colour: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := vrfBase
			switch tc.name {
			case "missing table":
				doc = strings.Replace(doc, "table = 100\n", "", 1)
			case "main table":
				doc = strings.Replace(doc, "table = 100", "table = 254", 1)
			case "fib table":
				doc = strings.Replace(doc, "table = 100", "table = 300", 1) + "\n[fib]\ntable = 300\n"
			case "duplicate table":
				doc = strings.Replace(doc, "table = 100", "table = 200", 1)
			case "duplicate name":
				doc = strings.Replace(doc, `name = "red"`, `name = "blue"`, 1)
			case "not a port":
				doc = strings.Replace(doc, `["eth1", "eth3"]`, `["eth1", "eth9"]`, 1)
			case "port twice":
				doc = strings.Replace(doc, `["eth2", "eth4"]`, `["eth1", "eth4"]`, 1)
			case "bad rd":
				doc = strings.Replace(doc, `"192.0.2.254:7"`, `"x:1"`, 1)
			case "rd 4-byte asn":
				doc = strings.Replace(doc, `"192.0.2.254:7"`, `"4200000000:70000"`, 1)
			case "priority range":
				doc = strings.Replace(doc, "rule-priority = 2000", "rule-priority = 32765", 1)
			case "priority overlap":
				doc = strings.Replace(doc, "rule-priority = 2000", "rule-priority = 1001", 1)
			case "unknown vrf":
				doc = strings.Replace(doc, `vrf = "red"`, `vrf = "green"`, 1)
			case "unknown key":
				doc = strings.Replace(doc, "interfaces = [\"eth1\", \"eth3\"]\n", "interfaces = [\"eth1\", \"eth3\"]\ncolour = 1\n", 1)
			}
			_, err := Parse([]byte(doc), "x.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			allErrors(t, err)
		})
	}
}
