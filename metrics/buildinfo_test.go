package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdprouter/xdprouter/version"
)

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewBuildInfo(version.Info{Version: "v1.2.3", Commit: "abcdef0", GoVersion: "go1.26.8"}))
	want := `# HELP xdprouter_build_info The running xdprouterd's version, commit and Go version; always 1.
# TYPE xdprouter_build_info gauge
xdprouter_build_info{commit="abcdef0",goversion="go1.26.8",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "xdprouter_build_info"); err != nil {
		t.Error(err)
	}
}
