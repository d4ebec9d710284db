package test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/lab"
)

const dashboardFile = "../contrib/grafana/xdprouter.json"

// TestDashboard: every metric name the Grafana dashboard's queries use
// exists in a live scrape of xdprouterd (BGP on with one neighbor, one
// filter rule: the conditions under which every series it charts exists),
// and a misspelt name would be caught.
func TestDashboard(t *testing.T) {
	exprs := dashboardExprs(t, dashboardFile)
	used := map[string][]string{} // metric name → the queries using it
	for _, e := range exprs {
		names, err := metricNames(e)
		if err != nil {
			t.Fatalf("%q: %v", e, err)
		}
		if len(names) == 0 {
			t.Errorf("query %q uses no metric", e)
		}
		for _, n := range names {
			used[n] = append(used[n], e)
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d metric names in %d queries: the parser lost some (%v)", len(used), len(exprs), used)
	}

	r := newLab(t)
	r.start(fmt.Sprintf(`[router]
asn = %d
router-id = "10.0.1.1"

[[neighbor]]
address = "10.0.2.2"
peer-asn = %d
description = "dashboard"
import = "accept-all"

[[filter]]
name = "ntp-amplification"
dst = "198.51.100.0/24"
protocol = "udp"
sport = 123
action = "drop"
`, lab.RouterASN, lab.UpstreamASN))
	var have map[string]bool
	r.poll(10*time.Second, func() error {
		have = scrapeNames(r.metrics())
		if m := missing(used, have); len(m) > 0 {
			return fmt.Errorf("not in the scrape: %v", m)
		}
		return nil
	})

	// The check is able to fail: a misspelt name is reported.
	bad := map[string][]string{"xdprouter_xdp_packet_total": nil, "xdprouter_sync_apply_second_bucket": nil}
	names, err := metricNames(`sum by (action) (rate(xdprouter_xdp_packet_total{instance=~"$instance"}[$__rate_interval]))`)
	if err != nil || !slices.Equal(names, []string{"xdprouter_xdp_packet_total"}) {
		t.Errorf("misspelt query parsed as %v, %v", names, err)
	}
	if m := missing(bad, have); len(m) != 2 {
		t.Errorf("misspelt names not reported: %v", m)
	}
}

// TestDashboardQueries checks the PromQL name extraction on its own.
func TestDashboardQueries(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`histogram_quantile(0.99, sum by (le) (rate(xdprouter_sync_apply_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
			[]string{"xdprouter_sync_apply_seconds_bucket"}},
		{`max by (map) (a{x="y"} / on(instance, map) group_left b)`, []string{"a", "b"}},
		{`sum(rate(x_total{a="{weird}"}[5m])) * 8 > bool 1e3`, []string{"x_total"}},
		{`count without (peer) (up{job='x'}) or vector(0)`, []string{"up"}},
		{`xdprouter_bgp_peer_restarting offset 1h > 0`, []string{"xdprouter_bgp_peer_restarting"}},
		{`label_values(xdprouter_routes, instance)`, []string{"xdprouter_routes"}},
		{`label_values(instance)`, nil},
		{`sum by (x (`, nil},
	} {
		got, err := metricNames(tc.expr)
		if tc.want == nil && tc.expr == `sum by (x (` {
			if err == nil {
				t.Errorf("%q: no error", tc.expr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

// dashboardExprs returns the PromQL of every panel target and query
// variable of a dashboard, checking the Grafana 10 shape on the way: a
// Prometheus data source variable that every panel and target uses.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Type  string          `json:"type"`
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.SchemaVersion < 38 { // Grafana 10.0
		t.Errorf("schemaVersion %d: not Grafana 10+", d.SchemaVersion)
	}
	var exprs []string
	dsVar := false
	for _, v := range d.Templating.List {
		var q any
		_ = json.Unmarshal(v.Query, &q)
		switch q := q.(type) {
		case string:
			if v.Type == "datasource" {
				dsVar = dsVar || (v.Name == "datasource" && q == "prometheus")
			} else if v.Type == "query" {
				exprs = append(exprs, q)
			}
		case map[string]any:
			if s, ok := q["query"].(string); ok && v.Type == "query" {
				exprs = append(exprs, s)
			}
		}
	}
	if !dsVar {
		t.Error("no Prometheus data source variable named datasource")
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q does not use the datasource variable", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: a target does not use the datasource variable", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return exprs
}

// missing lists the names of used that have no sample in have.
func missing(used map[string][]string, have map[string]bool) []string {
	var out []string
	for n := range used {
		if !have[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// scrapeNames returns the sample names of a Prometheus text exposition
// (histograms as their _bucket, _sum and _count series).
func scrapeNames(body string) map[string]bool {
	have := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			have[l[:i]] = true
		}
	}
	return have
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*(?:,\s*[A-Za-z_][A-Za-z0-9_]*\s*)?\)\s*$`)

// aggregators take an optional by/without clause before their arguments.
var aggregators = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true}

// keywords are PromQL words that are no metric names; those that take a
// label list are followed by one in parentheses.
var keywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
	"inf": true, "nan": true}

// metricNames returns the metric names a PromQL expression (with Grafana's
// $variables) selects, in order of appearance: identifiers that are no
// function, aggregator or keyword, outside label matchers, ranges, strings
// and label lists. A Grafana label_values(METRIC, LABEL) query gives METRIC.
func metricNames(expr string) ([]string, error) {
	if m := labelValuesRE.FindStringSubmatch(expr); m != nil {
		if !strings.Contains(m[0], ",") {
			return nil, nil // label_values(label): no metric
		}
		expr = m[1]
	}
	var out []string
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	// skipTo returns the index after the bracket closing the one at i,
	// stepping over strings.
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for ; i < len(expr); i++ {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				j := i + 1
				for j < len(expr) && expr[j] != c {
					if expr[j] == '\\' && c != '`' {
						j++
					}
					j++
				}
				i = j
			case c == open:
				depth++
			case c == close:
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c", open)
	}
	var err error
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			// A string at the top level (e.g. label_replace's arguments).
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{':
			if i, err = skipTo(i, '{', '}'); err != nil {
				return nil, err
			}
		case c == '[':
			if i, err = skipTo(i, '[', ']'); err != nil {
				return nil, err
			}
		case c == '$': // a Grafana variable: $name or ${name}
			i++
			if i < len(expr) && expr[i] == '{' {
				if i, err = skipTo(i, '{', '}'); err != nil {
					return nil, err
				}
			}
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.': // numbers, durations
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			paren := k < len(expr) && expr[k] == '('
			i = j
			switch {
			case keywords[strings.ToLower(word)]:
				if paren && word != "bool" && word != "and" && word != "or" && word != "unless" && word != "atan2" {
					if i, err = skipTo(k, '(', ')'); err != nil { // a label list
						return nil, err
					}
				}
			case paren || aggregators[word]: // a function, or an aggregator before by/without
			default:
				out = append(out, word)
			}
		default:
			i++
		}
	}
	return out, nil
}
