package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	xsync "github.com/xdprouter/xdprouter/sync"
)

// FuzzParsePrefix: an accepted prefix is valid and masked, its text parses
// back to it, and it is what the input says: the prefix (masked) or the
// address as a host prefix.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3/8", "10.0.0.1", "2001:db8::/32", "fe80::1%eth0", "::ffff:10.0.0.1/128",
		"1.2.3.4/33", "0.0.0.0/0", "::/0", "", "/", "10.0.0.0/08", "1.2.3.4/-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() {
			t.Fatalf("%q -> %v (valid %v)", s, p, p.IsValid())
		}
		if q, err := netip.ParsePrefix(s); err == nil {
			if q.Masked() != p {
				t.Fatalf("%q -> %v, want %v", s, p, q.Masked())
			}
		} else if a, err := netip.ParseAddr(s); err != nil || p != netip.PrefixFrom(a, a.BitLen()) {
			t.Fatalf("%q -> %v: neither its prefix nor its host prefix", s, p)
		}
		if a := p.Addr(); a.Zone() == "" {
			if p2, err := ParsePrefix(p.String()); err != nil || p2 != p {
				t.Fatalf("%q -> %v, again %v %v", s, p, p2, err)
			}
		}
	})
}

// FuzzHandler sends request targets (path and query, as a client may
// write them) to the API handler. The Backend has a Syncer and no
// Datapath: requests that would read the BPF maps (status, neighbors,
// stats, a lookup of a valid address) are left out; everything else —
// routing, the routes filter, lookup's address parsing — runs for real.
// Property: no panic, an expected status, and a JSON body for 200 and 400
// (400 naming the error), 400 exactly when the filter does not parse.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{
		"/api/v1/routes", "/api/v1/routes?prefix=10.0.0.0/8", "/api/v1/routes?prefix=10.0.0.1",
		"/api/v1/routes?prefix=2001:db8::/33", "/api/v1/routes?prefix=bogus", "/api/v1/routes?prefix=1.2.3.4/33",
		"/api/v1/routes?prefix=%zz", "/api/v1/routes?prefix=a&prefix=10.0.0.0/8", "/api/v1/routes?prefix=fe80::1%25eth0",
		"/api/v1/lookup?addr=", "/api/v1/lookup?addr=x", "/api/v1/lookup", "/api/v1/nexthops",
		"/api/v1/../v1/routes", "//api/v1/routes", "/api/v1/routes/", "/api/v2/routes", "/", "*",
	} {
		f.Add("GET", s)
	}
	f.Add("POST", "/api/v1/routes")
	f.Add("HEAD", "/api/v1/nexthops")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := Handler(Backend{Sync: xsync.New(xsync.Options{Log: log})})
	mux := h.(*http.ServeMux)
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !validMethod(method) {
			return // the HTTP server refuses these before any handler
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.URL, req.RequestURI = method, u, target
		_, pattern := mux.Handler(req)
		switch pattern {
		case "GET /api/v1/status", "GET /api/v1/neighbors", "GET /api/v1/stats":
			return // these read the BPF maps
		case "GET /api/v1/lookup":
			if _, err := netip.ParseAddr(u.Query().Get("addr")); err == nil {
				return // a valid address is looked up in the maps
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if pattern == "" { // the mux's own answer: not found, redirect, bad request
			return
		}
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest:
			if method == http.MethodHead {
				break
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, target, rec.Code, rec.Body)
			}
			if rec.Code == http.StatusBadRequest {
				var e errorReply
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s %s: 400 without an error: %q", method, target, rec.Body)
				}
			}
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusMovedPermanently,
			http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return
		default:
			t.Fatalf("%s %s: status %d: %q", method, target, rec.Code, rec.Body)
		}
		switch pattern {
		case "GET /api/v1/routes":
			s := u.Query().Get("prefix")
			_, perr := ParsePrefix(s)
			if bad := s != "" && perr != nil; bad != (rec.Code == http.StatusBadRequest) {
				t.Fatalf("%s %s: prefix %q: status %d, parse error %v", method, target, s, rec.Code, perr)
			}
		case "GET /api/v1/lookup":
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("%s %s: invalid address, status %d", method, target, rec.Code)
			}
		}
	})
}

// validMethod reports whether m is an HTTP token (what net/http accepts as
// a method).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range []byte(m) {
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '<' || c == '>' || c == '@' || c == ',' || c == ';' ||
			c == ':' || c == '\\' || c == '"' || c == '/' || c == '[' || c == ']' || c == '?' || c == '=' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}
