package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedConfigs adds the example config, the tests' configs and the
// integration lab's daemon config to f's corpus.
func seedConfigs(f *testing.F) {
	example, err := os.ReadFile("example.toml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add(minimal)
	f.Add(header)
	for _, c := range validationCases {
		body := strings.ReplaceAll(c.body, "#<", "")
		if !c.noHeader {
			body = header + body
		}
		f.Add(body)
	}
	for _, c := range filterCases {
		f.Add(filterHeader + strings.ReplaceAll(c.body, "#<", "") + "\n")
	}
	f.Add(`[api]
metrics-listen = "127.0.0.1:9179"
grpc-listen = "127.0.0.1:50051"

[dataplane]
interfaces = ["eth1", "eth2"]
xdp-mode = "native"
pin-path = ""

[router]
asn = 65000
router-id = "10.0.1.1"

[[neighbor]]
address = "10.0.3.2"
peer-asn = 65002
import = "accept-all"
passive = true
connect-retry = 1
families = ["ipv4-unicast", "ipv6-unicast"]

[[prefix-set]]
name = "ours"
prefixes = ["192.0.2.0/24", "2001:db8::/32 32..48"]

[[neighbor-set]]
name = "ups"
addresses = ["10.0.3.2", "fd00::/8"]

[[community-set]]
name = "c"
communities = ["65000:1", "^65000:.*$", "no-export"]

[[policy]]
name = "p"
[[policy.statement]]
name = "s"
match-prefix-set = "ours"
match-neighbor-set = "ups"
match-community-set = "c"
action = "accept"
set-local-pref = 200
set-med = 10
add-community = ["65000:2"]
`)
	f.Add("a = 1\n[[neighbor]]\n[[neighbor]]\naddress = 3\n")
	f.Add("[router]\nasn = \"x\"\n")
	f.Add("[[neighbor]]\nport = -1\nhold-time = 1e9\n")
	f.Add("\"a\".'b'.c = { d = [1, 2], e = \"\"\"\nx\"\"\" }\n")
}

// FuzzParse: the config loader never panics, and either rejects the input
// with errors that name the file (each a *Error) or returns a config that
// validates and that parsing the same input again reproduces.
func FuzzParse(f *testing.F) {
	seedConfigs(f)
	f.Fuzz(func(t *testing.T, src string) {
		const name = "fuzz.toml"
		c, err := Parse([]byte(src), name)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			for _, e := range leaves(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("error %q (%T) is not a *config.Error", e, e)
				}
				if !strings.HasPrefix(e.Error(), name+":") && !strings.HasPrefix(e.Error(), name+" ") {
					t.Fatalf("error %q does not start with the file name", e)
				}
			}
			return
		}
		if c.File != name {
			t.Fatalf("File = %q", c.File)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v\n%s", err, src)
		}
		again, err := Parse([]byte(src), name)
		if err != nil || !c.Equal(again) {
			t.Fatalf("parsing again: %v, equal %v", err, err == nil && c.Equal(again))
		}
		// Defaults are idempotent: applying them again changes nothing.
		d := *c
		d.ApplyDefaults()
		if !c.Equal(&d) {
			t.Fatalf("ApplyDefaults changed an accepted config:\n%+v\n%+v", c, &d)
		}
		_ = c.NetworkPrefixes()
	})
}

// FuzzLoad runs the same property through Load, i.e. a file on disk.
func FuzzLoad(f *testing.F) {
	f.Add(minimal)
	f.Add("[router]\nasn = 1\n")
	f.Fuzz(func(t *testing.T, src string) {
		path := filepath.Join(t.TempDir(), "x.toml")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load accepted a config that does not validate: %v", verr)
			}
		} else if !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name %s", err, path)
		}
	})
}

// FuzzScanLines: the line scanner (key → line for error messages) takes any
// bytes, TOML or not.
func FuzzScanLines(f *testing.F) {
	seedConfigs(f)
	f.Add("[[a.b]]\n'c' = \"\\\"\"\nd = '''\n[x]\n'''\n[e\n")
	f.Fuzz(func(t *testing.T, src string) {
		lines := scanLines([]byte(src))
		n := strings.Count(src, "\n") + 1
		for k, l := range lines {
			if l < 1 || l > n {
				t.Fatalf("key %q at line %d of %d", k, l, n)
			}
		}
	})
}

// FuzzPrefixSetEntry: an accepted entry is a masked prefix with a range
// inside its family, and its canonical form parses to the same entry.
func FuzzPrefixSetEntry(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.0.0.0/8 16..24", "2001:db8::/32 32..128", "10.0.0.1/8", " 0.0.0.0/0\t0..32 ", "::/0 1..0", "1.2.3.4/33", "10.0.0.0/8 -1..+3", "::ffff:1.2.3.4/120"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, e string) {
		p, lo, hi, err := ParsePrefixSetEntry(e)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || lo < p.Bits() || lo > hi || hi > p.Addr().BitLen() {
			t.Fatalf("%q -> %v %d..%d", e, p, lo, hi)
		}
		p2, lo2, hi2, err := ParsePrefixSetEntry(fmt.Sprintf("%s %d..%d", p, lo, hi))
		if err != nil || p2 != p || lo2 != lo || hi2 != hi {
			t.Fatalf("%q -> %v %d..%d, again %v %d..%d %v", e, p, lo, hi, p2, lo2, hi2, err)
		}
	})
}

// FuzzNeighborSetEntry: an accepted entry is a valid prefix whose text
// parses back to it.
func FuzzNeighborSetEntry(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/8", "fd00::1", "fe80::1%eth0", "10.0.0.1/8", "/", "::ffff:10.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, e string) {
		p, err := ParseNeighborSetEntry(e)
		if err != nil {
			return
		}
		if !p.IsValid() {
			t.Fatalf("%q -> invalid prefix", e)
		}
		if p2, err := ParseNeighborSetEntry(p.String()); err != nil || p2 != p {
			t.Fatalf("%q -> %v, again %v %v", e, p, p2, err)
		}
	})
}

// leaves flattens an errors.Join tree.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
