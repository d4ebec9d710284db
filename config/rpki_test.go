package config

import (
	"strings"
	"testing"
)

const rpkiBase = `[router]
asn = 65000
router-id = "192.0.2.254"

[[rpki]]
address = "192.0.2.10"
port = 8282

[[rpki]]
address = "2001:db8::10"

[[bmp]]
address = "192.0.2.20"
`

func TestRPKIBMPDefaults(t *testing.T) {
	c, err := Parse([]byte(rpkiBase), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.BGP.RPKIRejectInvalid || c.BGP.RPKIValidLocalPref != 0 {
		t.Errorf("bgp rpki defaults: reject-invalid %v, valid-local-pref %d", c.BGP.RPKIRejectInvalid, c.BGP.RPKIValidLocalPref)
	}
	if r := c.RPKI[0]; r.Port != 8282 || r.Lifetime != DefaultRPKILifetime {
		t.Errorf("rpki[0]: %+v", r)
	}
	if r := c.RPKI[1]; r.Port != DefaultRPKIPort {
		t.Errorf("rpki[1]: %+v", r)
	}
	if b := c.BMP[0]; b.Port != DefaultBMPPort || b.RouteMonitoring != BMPPrePolicy || b.StatisticsInterval != 0 {
		t.Errorf("bmp[0]: %+v", b)
	}
	c2, err := Parse([]byte(rpkiBase+"\n[bgp]\nrpki-reject-invalid = false\n"), "x.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c2.BGP.RPKIRejectInvalid {
		t.Error("rpki-reject-invalid = false not kept")
	}
}

func TestRPKIBMPErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"bad address", `"192.0.2.10"`, `"192.0.2.300"`, `x.toml:6: rpki[0].address: "192.0.2.300" is not an IP address`},
		{"unspecified", `"192.0.2.10"`, `"0.0.0.0"`, `x.toml:6: rpki[0].address: "0.0.0.0" is not a unicast address`},
		{"missing address", "address = \"2001:db8::10\"\n", "", "x.toml:9: rpki[1].address: must be set"},
		{"port range", "port = 8282", "port = 70000", "x.toml:7: rpki[0].port: must be 1..65535, got 70000"},
		{"duplicate", `"2001:db8::10"`, "\"192.0.2.10\"\nport = 8282", "x.toml:10: rpki[1].address: 192.0.2.10:8282 is already rpki[0]"},
		{"lifetime", "port = 8282", "port = 8282\nlifetime = 0", "x.toml:8: rpki[0].lifetime: must be 1..604800"},
		{"local-pref without rpki", "", "", "bgp.rpki-valid-local-pref: needs at least one [[rpki]] cache"},
		{"bmp address", `"192.0.2.20"`, `"collector"`, `x.toml:13: bmp[0].address: "collector" is not an IP address`},
		{"bmp monitoring", `address = "192.0.2.20"`, "address = \"192.0.2.20\"\nroute-monitoring = \"pre\"", `x.toml:14: bmp[0].route-monitoring: "pre": must be pre-policy, post-policy, local-rib or all`},
		{"bmp duplicate", "", "", "x.toml:16: bmp[1].address: 192.0.2.20:11019 is already bmp[0]"},
		{"bmp statistics", `address = "192.0.2.20"`, "address = \"192.0.2.20\"\nstatistics-interval = 70000", "x.toml:14: bmp[0].statistics-interval: must be 0..65535"},
		{"bgp off", "asn = 65000", "asn = 0", "x.toml:5: rpki[0]: needs BGP: router.asn is 0"},
		{"unknown key", "port = 8282", "port = 8282\nrefresh = 5", "x.toml:8: rpki[0].refresh: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := rpkiBase
			switch tc.name {
			case "local-pref without rpki":
				doc = "[router]\nasn = 65000\nrouter-id = \"192.0.2.254\"\n[bgp]\nrpki-valid-local-pref = 200\n"
			case "bmp duplicate":
				doc += "\n[[bmp]]\naddress = \"192.0.2.20\"\n"
			default:
				doc = strings.Replace(doc, tc.from, tc.to, 1)
			}
			_, err := Parse([]byte(doc), "x.toml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			allErrors(t, err)
		})
	}
}
