package config

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where xdprouterd and xdprouterctl look for the config
// when --config is not given.
const DefaultPath = "/etc/xdprouter/xdprouter.toml"

// Error is one problem with a config file. Its text starts with
// "FILE:LINE: KEY: ", e.g.
//
//	/etc/xdprouter/xdprouter.toml:12: neighbor[1].peer-asn: must be set
//
// Array elements are numbered from 0 in the order they appear in the file;
// the line number tells which one is meant. A key that is missing is
// reported at the line of its table header, or without a line if the table
// is missing too. Syntax errors carry a column and no key.
type Error struct {
	File string
	Line int // 0: not in the file
	Col  int // syntax errors only
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d:", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s:", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d:", e.Line)
	}
	if e.Col > 0 && e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Col)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// MaxFileSize bounds what Load reads: a config is a few KB, and a path
// such as /dev/zero must not make the daemon read gigabytes.
const MaxFileSize = 1 << 20

// Load reads, decodes, defaults and validates the config file at path.
// The returned error joins every problem found (see [Error]). Only regular
// files of at most MaxFileSize bytes are read.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

func readFile(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
	// below. For regular files the flag changes nothing.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fileKind(st.Mode()))
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, larger than the limit of %d bytes (1 MiB)", path, st.Size(), MaxFileSize)
	}
	// The file may grow after Stat: never read more than the limit.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than the limit of %d bytes (1 MiB)", path, MaxFileSize)
	}
	return data, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

// Parse is [Load] for a config already in memory; name is used in error
// messages and stored in Config.File.
//
// Keys the schema does not know are errors, reported together with the
// validation errors so that one run shows every problem.
func Parse(data []byte, name string) (*Config, error) {
	// First pass into a generic document: syntax errors with position, and
	// the set of keys actually written (defaults must not overwrite an
	// explicit zero such as hold-time = 0 or grpc-listen = "").
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, syntaxError(err, name)
	}
	pos := &positions{lines: scanLines(data), present: presentKeys(doc)}

	c := &Config{File: name, pos: pos}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, typeError(err, name, doc, pos)
	}

	// The library matches keys to fields ignoring case: "Peer-ASN" would
	// set peer-asn, and with both spellings in one table which value wins
	// changes from one run to the next. Keys are spelled as the schema
	// spells them; any other spelling is an unknown key.
	unknown := md.Undecoded()
	for _, k := range md.Keys() {
		if _, ok := fieldType(reflect.TypeOf(Config{}), k); !ok {
			unknown = append(unknown, k)
		}
	}
	errs := unknownKeys(unknown, name, pos)
	c.applyDefaults()
	errs = append(errs, c.problems()...)
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return c, nil
}

func syntaxError(err error, name string) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.Position.Line, Col: pe.Position.Col, Msg: "syntax error: " + pe.Message}
	}
	return &Error{File: name, Msg: err.Error()}
}

// unknownKeys reports keys the schema does not know, once per occurrence
// (an unknown key in three [[neighbor]]s is three errors), sorted by line.
// Keys below an unknown table are not repeated.
func unknownKeys(keys []toml.Key, name string, pos *positions) []error {
	unknown := map[string]bool{}
	for _, k := range keys {
		unknown[k.String()] = true
	}
	var paths []string
	for path := range pos.present {
		k := stripIndexes(path)
		if !unknown[k] {
			continue
		}
		if p := parentPath(path); p != "" && unknown[stripIndexes(p)] {
			continue // its table is already reported
		}
		paths = append(paths, path)
	}
	sort.Slice(paths, func(i, j int) bool {
		li, _ := pos.line(paths[i])
		lj, _ := pos.line(paths[j])
		if li != lj {
			return li < lj
		}
		return paths[i] < paths[j]
	})
	var errs []error
	for _, path := range paths {
		line, _ := pos.line(path)
		errs = append(errs, &Error{File: name, Line: line, Key: path, Msg: "unknown key"})
	}
	return errs
}

// The library names the failing key without array indexes, and for keys in
// arrays of tables reports the line of the key's last occurrence. Find the
// occurrence that actually fails by decoding each candidate on its own.
var lastKeyRE = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]*)"\): `)

func typeError(err error, name string, doc map[string]any, pos *positions) error {
	var key, msg string
	var pe toml.ParseError
	if errors.As(err, &pe) {
		key, msg = pe.LastKey, pe.Message
	} else if m := lastKeyRE.FindStringSubmatch(err.Error()); m != nil {
		key, msg = m[1], strings.TrimPrefix(err.Error(), m[0])
	} else {
		return &Error{File: name, Msg: err.Error()}
	}
	path := key
	if t, ok := fieldType(reflect.TypeOf(Config{}), strings.Split(key, ".")); ok {
		for _, cand := range instances(doc, strings.Split(key, ".")) {
			if decodeAs(cand.value, t) != nil {
				path = cand.path
				break
			}
		}
	}
	line, _ := pos.line(path)
	return &Error{File: name, Line: line, Key: path, Msg: msg}
}

// fieldType follows toml tags from t along keys to the Go type of the last
// key (through slices, so "neighbor.port" is uint32, and maps, so
// "dataplane.urpf-ports.eth1" is string).
func fieldType(t reflect.Type, keys []string) (reflect.Type, bool) {
	for _, k := range keys {
		for t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() == reflect.Map { // any key: dataplane.urpf-ports.eth1
			t = t.Elem()
			continue
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		ft, found := structField(t, k)
		if !found {
			return nil, false
		}
		t = ft
	}
	return t, true
}

// structField finds the field of struct t with toml key k, looking into
// embedded structs without a tag as the TOML library does (PeerGroup's
// Neighbor).
func structField(t reflect.Type, k string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == k {
			return f.Type, true
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			if ft, ok := structField(f.Type, k); ok {
				return ft, true
			}
		}
	}
	return nil, false
}

type instance struct {
	path  string
	value any
}

// instances lists every occurrence of keys in doc, with its indexed path.
func instances(doc any, keys []string) []instance {
	out := []instance{{value: doc}}
	for _, k := range keys {
		var nextOut []instance
		for _, in := range out {
			var elems []instance
			switch v := in.value.(type) {
			case []map[string]any:
				for i, e := range v {
					elems = append(elems, instance{indexPath(in.path, i), e})
				}
			case []any:
				for i, e := range v {
					elems = append(elems, instance{indexPath(in.path, i), e})
				}
			default:
				elems = []instance{in}
			}
			for _, e := range elems {
				if m, ok := e.value.(map[string]any); ok {
					if v, ok := m[k]; ok {
						nextOut = append(nextOut, instance{joinPath(e.path, k), v})
					}
				}
			}
		}
		out = nextOut
	}
	return out
}

// decodeAs reports whether value decodes into a Go value of type t.
func decodeAs(value any, t reflect.Type) error {
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(map[string]any{"v": value}); err != nil {
		return err
	}
	st := reflect.StructOf([]reflect.StructField{{Name: "V", Type: t, Tag: `toml:"v"`}})
	_, err := toml.Decode(b.String(), reflect.New(st).Interface())
	return err
}

// Addr returns the neighbor's address, or the zero Addr if it does not
// parse (never after a successful Load).
func (n Neighbor) Addr() netip.Addr {
	a, _ := netip.ParseAddr(n.Address)
	return a
}

// NetworkPrefixes returns the originated prefixes, skipping any that do not
// parse (none after a successful Load).
func (c *Config) NetworkPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.Networks))
	for _, n := range c.Networks {
		if p, err := netip.ParsePrefix(n.Prefix); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// BGPEnabled reports whether the BGP speaker runs: router.asn is set. With
// asn = 0 (or no [router] table) xdprouterd only mirrors the kernel FIB
// into XDP; neighbors and networks then are configuration errors.
func (c *Config) BGPEnabled() bool { return c.Router.ASN != 0 }

// Equal reports whether two configs have the same settings, ignoring where
// they were read from and how the file is laid out (comments, order of
// keys). Use it on SIGHUP to skip a reload that changes nothing.
func (c *Config) Equal(o *Config) bool {
	a, b := *c, *o
	a.File, b.File = "", ""
	a.pos, b.pos = nil, nil
	return reflect.DeepEqual(a, b)
}
