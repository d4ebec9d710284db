package bypass

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Legacy iptables (x_tables) sends no notifications and has no netlink
// interface: the tables the kernel has loaded are listed in
// /proc/net/ip{,6}_tables_names, and their rules only in what
// ip{,6}tables-legacy-save prints.

// legacyFamily is one of the two x_tables families.
type legacyFamily struct {
	names string // file in /proc/net
	save  string // the save command
	tool  string // for messages
}

var legacyFamilies = []legacyFamily{
	{"ip_tables_names", "iptables-legacy-save", "iptables-legacy"},
	{"ip6_tables_names", "ip6tables-legacy-save", "ip6tables-legacy"},
}

// saveFunc runs a save command (in the caller's network namespace) and
// returns its output; exec.ErrNotFound when it is not installed.
type saveFunc func(cmd string) ([]byte, error)

func runSave(cmd string) ([]byte, error) {
	path, err := exec.LookPath(cmd)
	if err != nil {
		return nil, exec.ErrNotFound
	}
	var stderr bytes.Buffer
	c := exec.Command(path)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// checkLegacy reports the FORWARD and PREROUTING chains of loaded legacy
// tables that have rules or a DROP policy. procNet is /proc/net of the
// namespace (/proc/thread-self/net: /proc/net follows the main thread).
func checkLegacy(procNet string, save saveFunc) ([]Finding, error) {
	var out []Finding
	var errs []error
	for _, fam := range legacyFamilies {
		b, err := os.ReadFile(filepath.Join(procNet, fam.names))
		if errors.Is(err, os.ErrNotExist) {
			continue // no x_tables for this family in the kernel
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables := strings.Fields(string(b))
		if len(tables) == 0 {
			continue
		}
		dump, err := save(fam.save)
		if errors.Is(err, exec.ErrNotFound) {
			out = append(out, Finding{Kind: KindIPTLegacy, Count: len(tables), Detail: fmt.Sprintf(
				"%s tables %s (%s is not installed: rules not counted)", fam.tool, strings.Join(tables, ", "), fam.save)})
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, parseSave(fam.tool, dump)...)
	}
	return out, errors.Join(errs...)
}

// parseSave reads iptables-save output and reports the built-in FORWARD
// and PREROUTING chains with rules (-A lines) or a DROP policy.
func parseSave(tool string, dump []byte) []Finding {
	type chain struct {
		table, name string
		drop        bool
		rules       int
	}
	var chains []*chain
	byName := map[string]*chain{}
	table := ""
	get := func(name string) *chain {
		k := table + " " + name
		if c := byName[k]; c != nil {
			return c
		}
		c := &chain{table: table, name: name}
		byName[k] = c
		chains = append(chains, c)
		return c
	}
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "*"):
			table = f[0][1:]
		case strings.HasPrefix(f[0], ":") && len(f) >= 2:
			if name := f[0][1:]; name == "FORWARD" || name == "PREROUTING" {
				get(name).drop = f[1] == "DROP"
			}
		case f[0] == "-A" && len(f) >= 2 && (f[1] == "FORWARD" || f[1] == "PREROUTING"):
			get(f[1]).rules++
		}
	}
	var out []Finding
	for _, c := range chains {
		n := c.rules
		if c.drop {
			n++
		}
		if n == 0 {
			continue
		}
		d := fmt.Sprintf("%s table %s chain %s (", tool, c.table, c.name)
		if c.drop {
			d += "policy DROP, "
		}
		out = append(out, Finding{Kind: KindIPTLegacy, Count: n, Detail: d + plural(c.rules, "rule") + ")"})
	}
	return out
}
