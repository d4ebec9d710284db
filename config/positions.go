package config

import (
	"strconv"
	"strings"
)

// positions maps key paths to the line they are written on. A key path is
// the dotted TOML key with the index of every array element, 0-based:
// "router.asn", "neighbor[1]" (the line of the second [[neighbor]] header),
// "neighbor[1].peer-asn", "policy[0].statement[2].action",
// "dataplane.interfaces[1]" (an element of a multi-line array).
//
// BurntSushi/toml does not expose positions of decoded keys, so they come
// from scanLines, a small tolerant scanner that understands the layouts
// people write: [table], [[array]], [[parent.child]], dotted keys, quoted
// keys, inline tables, multi-line arrays and strings, and comments. It is
// only used for positions; the TOML parser decides what the file means.
type positions struct {
	lines map[string]int
	// present holds every key path the file defines (from the parsed
	// document, not the scanner). Defaults fill only keys not present, so an
	// explicit zero ("grpc-listen = \"\"", "hold-time = 0") is kept.
	present map[string]bool
	// inherited maps a neighbor's key path that it takes from its peer
	// group to the group's ("neighbor[2].hold-time" →
	// "peer-group[0].hold-time"): problems with the value are reported
	// where it is written.
	inherited map[string]string
}

// line returns the line of path, or of the nearest enclosing key or table
// that has one, and whether the line is the key's own. It returns 0 when
// nothing on the way is in the file.
func (p *positions) line(path string) (line int, exact bool) {
	if p == nil {
		return 0, false
	}
	for first := true; path != ""; first = false {
		if l, ok := p.lines[path]; ok {
			return l, first
		}
		path = parentPath(path)
	}
	return 0, false
}

// isSet reports whether the file defines path (nil-safe).
func (p *positions) isSet(path string) bool {
	return p != nil && p.present[path]
}

// parentPath drops the last component of a key path: "a[1].b" → "a[1]",
// "a[1]" → "a", "a" → "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// stripIndexes turns "neighbor[1].peer-asn" into "neighbor.peer-asn", the
// form in which the TOML library names keys.
func stripIndexes(path string) string {
	var b strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// presentKeys flattens a decoded document into the set of its key paths.
func presentKeys(doc map[string]any) map[string]bool {
	set := make(map[string]bool)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		set[path] = true
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(joinPath(path, k), e)
			}
		case []map[string]any:
			for i, e := range v {
				walk(indexPath(path, i), e)
			}
		case []any:
			for i, e := range v {
				walk(indexPath(path, i), e)
			}
		}
	}
	for k, v := range doc {
		walk(k, v)
	}
	return set
}

// lineScanner records the line of every key, table header and array
// element. It never fails: on anything it does not understand it skips to
// the next line, and the TOML parser reports the real error.
type lineScanner struct {
	s     string
	i     int
	line  int
	lines map[string]int
	// count of [[x]] headers seen per resolved array path
	arrays map[string]int
}

func scanLines(data []byte) map[string]int {
	sc := &lineScanner{s: string(data), line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	sc.top()
	return sc.lines
}

func (sc *lineScanner) eof() bool { return sc.i >= len(sc.s) }

func (sc *lineScanner) peek() byte {
	if sc.eof() {
		return 0
	}
	return sc.s[sc.i]
}

func (sc *lineScanner) next() byte {
	c := sc.s[sc.i]
	sc.i++
	if c == '\n' {
		sc.line++
	}
	return c
}

func (sc *lineScanner) hasPrefix(p string) bool { return strings.HasPrefix(sc.s[sc.i:], p) }

// skipSpace skips blanks on the current line.
func (sc *lineScanner) skipSpace() {
	for !sc.eof() && (sc.peek() == ' ' || sc.peek() == '\t') {
		sc.i++
	}
}

// skipToEOL skips the rest of the line including the newline.
func (sc *lineScanner) skipToEOL() {
	for !sc.eof() && sc.next() != '\n' {
	}
}

// skipBlank skips whitespace, newlines and comments.
func (sc *lineScanner) skipBlank() {
	for !sc.eof() {
		switch sc.peek() {
		case ' ', '\t', '\r', '\n':
			sc.next()
		case '#':
			for !sc.eof() && sc.peek() != '\n' {
				sc.i++
			}
		default:
			return
		}
	}
}

func (sc *lineScanner) top() {
	table := ""
	for {
		sc.skipBlank()
		if sc.eof() {
			return
		}
		line := sc.line
		switch {
		case sc.hasPrefix("[["):
			sc.i += 2
			keys, ok := sc.keyPath()
			sc.skipSpace()
			if !ok || !sc.hasPrefix("]]") {
				sc.skipToEOL()
				continue
			}
			sc.i += 2
			full := joinPath(sc.resolve(keys[:len(keys)-1]), keys[len(keys)-1])
			n := sc.arrays[full]
			sc.arrays[full] = n + 1
			table = indexPath(full, n)
			sc.set(full, line) // first [[x]] marks the array itself
			sc.set(table, line)
		case sc.peek() == '[':
			sc.i++
			keys, ok := sc.keyPath()
			sc.skipSpace()
			if !ok || sc.peek() != ']' {
				sc.skipToEOL()
				continue
			}
			sc.i++
			table = sc.resolve(keys)
			sc.set(table, line)
		default:
			keys, ok := sc.keyPath()
			sc.skipSpace()
			if !ok || sc.peek() != '=' {
				sc.skipToEOL()
				continue
			}
			sc.i++
			path := table
			for _, k := range keys {
				path = joinPath(path, k)
				sc.set(path, line)
			}
			sc.value(path)
		}
		// Whatever follows on the line is a comment (or an error the TOML
		// parser reports).
		sc.skipToEOL()
	}
}

// set records the first line of path.
func (sc *lineScanner) set(path string, line int) {
	if _, ok := sc.lines[path]; !ok {
		sc.lines[path] = line
	}
}

// resolve turns table keys into a path, adding the current index of every
// array of tables on the way: [policy.statement] inside the second
// [[policy]] is "policy[1].statement".
func (sc *lineScanner) resolve(keys []string) string {
	path := ""
	for _, k := range keys {
		path = joinPath(path, k)
		if n, ok := sc.arrays[path]; ok {
			path = indexPath(path, n-1)
		}
	}
	return path
}

// keyPath reads a dotted key of bare and quoted parts.
func (sc *lineScanner) keyPath() ([]string, bool) {
	var keys []string
	for {
		sc.skipSpace()
		var k string
		switch c := sc.peek(); {
		case c == '"' || c == '\'':
			s, ok := sc.quoted()
			if !ok {
				return nil, false
			}
			k = s
		case isBare(c):
			start := sc.i
			for !sc.eof() && isBare(sc.peek()) {
				sc.i++
			}
			k = sc.s[start:sc.i]
		default:
			return nil, false
		}
		keys = append(keys, k)
		sc.skipSpace()
		if sc.peek() != '.' {
			return keys, true
		}
		sc.i++
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// quoted reads a single-line basic or literal string and returns its
// content (escapes are kept as written; keys in this schema have none).
func (sc *lineScanner) quoted() (string, bool) {
	q := sc.next()
	start := sc.i
	for !sc.eof() {
		c := sc.peek()
		switch {
		case c == '\n':
			return "", false
		case c == '\\' && q == '"':
			sc.i += 2
		case c == q:
			s := sc.s[start:sc.i]
			sc.i++
			return s, true
		default:
			sc.i++
		}
	}
	return "", false
}

// value skips one value, recording the lines of array elements and inline
// table keys under path.
func (sc *lineScanner) value(path string) {
	sc.skipSpace()
	switch {
	case sc.hasPrefix(`"""`) || sc.hasPrefix(`'''`):
		q := sc.s[sc.i : sc.i+3]
		sc.i += 3
		for !sc.eof() {
			if q == `"""` && sc.peek() == '\\' {
				sc.next()
				if !sc.eof() {
					sc.next()
				}
				continue
			}
			if sc.hasPrefix(q) {
				sc.i += 3
				// A closing delimiter may be followed by up to two quotes
				// that belong to the content.
				for n := 0; n < 2 && sc.peek() == q[0]; n++ {
					sc.i++
				}
				return
			}
			sc.next()
		}
	case sc.peek() == '"' || sc.peek() == '\'':
		sc.quoted()
	case sc.peek() == '[':
		sc.next()
		for n := 0; ; {
			sc.skipBlank()
			switch sc.peek() {
			case 0:
				return
			case ']':
				sc.next()
				return
			case ',':
				sc.next()
			default:
				elem := indexPath(path, n)
				sc.set(elem, sc.line)
				start := sc.i
				sc.value(elem)
				n++
				if sc.i == start { // not a value; give up on this array
					return
				}
			}
		}
	case sc.peek() == '{':
		sc.next()
		for {
			sc.skipSpace()
			switch sc.peek() {
			case 0, '\n':
				return
			case '}':
				sc.next()
				return
			case ',':
				sc.next()
			default:
				line := sc.line
				keys, ok := sc.keyPath()
				sc.skipSpace()
				if !ok || sc.peek() != '=' {
					return
				}
				sc.next()
				p := path
				for _, k := range keys {
					p = joinPath(p, k)
					sc.set(p, line)
				}
				sc.value(p)
			}
		}
	default:
		// Number, boolean or date-time: up to a delimiter.
		for !sc.eof() && !strings.ContainsRune(",]}#\r\n", rune(sc.peek())) {
			sc.i++
		}
	}
}
