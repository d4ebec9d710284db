# xdprouter — see README.md. Targets that touch the kernel need root.
GO      ?= go
export PATH := /usr/local/go/bin:$(PATH)
BIN     := bin
DURATION ?= 30s

.PHONY: all build generate test unit lint lab bench deps fuzz fuzz-brief clean deb

all: build

# Version stamping (xdprouterd --version, xdprouterctl version,
# xdprouter_build_info): GOFLAGS has -buildvcs=false here, so the Makefile
# passes what git says; outside a git checkout: "devel", "unknown".
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
LDFLAGS := -X github.com/xdprouter/xdprouter/version.version=$(VERSION) \
	-X github.com/xdprouter/xdprouter/version.commit=$(COMMIT)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/xdprouterd ./cmd/xdprouterctl ./cmd/xdprouter-lab
	$(GO) build -o $(BIN)/gobgp github.com/osrg/gobgp/v4/cmd/gobgp

# The Debian package (packaging/nfpm.yaml, nfpm as a Go tool of the
# module): binaries, unit, config, rt_protos, man pages, and the Grafana
# dashboards of contrib/grafana if there are any. Its version: the tag
# without its "v" (1.2.3-4-gabc), or 0.0~git<commit time>.<commit>.
PKG := $(BIN)/pkg
DEB_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo $${v\#v} || \
	echo 0.0~git$$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0).$$(git rev-parse --short HEAD 2>/dev/null || echo unknown))
deb: build
	rm -rf $(PKG) && mkdir -p $(PKG)/man/man8 $(PKG)/man/man1 $(PKG)/share/dashboards $(PKG)/share/examples $(PKG)/doc
	cp $(BIN)/xdprouterd $(BIN)/xdprouterctl $(BIN)/gobgp $(PKG)/
	for p in docs/man/*.8; do gzip -9n -c $$p > $(PKG)/man/man8/$$(basename $$p).gz; done
	for p in docs/man/*.1; do gzip -9n -c $$p > $(PKG)/man/man1/$$(basename $$p).gz; done
	cp config/example.toml $(PKG)/share/
	cp examples/*.toml $(PKG)/share/examples/
	for d in contrib/grafana/*.json; do [ ! -e "$$d" ] || cp "$$d" $(PKG)/share/dashboards/; done
	gzip -9n -c README.md > $(PKG)/doc/README.md.gz
	DEB_VERSION='$(DEB_VERSION)' $(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target $(BIN)/
	@ls -l $(BIN)/*.deb

# Regenerate the BPF objects (needs clang); the output is committed.
generate:
	$(GO) generate ./bpf/...

# Installs the Debian packages the tests and the lab use (only what is
# missing; never starts a daemon: policy-rc.d refuses).
deps:
	scripts/deps.sh

# Unit + integration tests, with the race detector (also in the daemon the
# integration tests run). Integration tests need root and skip without it.
test: deps
	$(GO) test -race -count=1 -timeout 30m ./...

# -short: no root needed; privileged tests (test/) skip even as root.
unit:
	$(GO) test -count=1 -short ./...

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt: $$bad"; exit 1; fi
	$(GO) vet ./...

# Every fuzz target, FUZZTIME each (go test fuzzes one target at a time):
# the XDP program (needs root), the config loader and the API's parsers.
# Their seed corpora (and testdata/fuzz) run in every go test anyway.
FUZZTIME ?= 60s
FUZZ_TARGETS := bpf:FuzzXDP \
	config:FuzzParse config:FuzzLoad config:FuzzScanLines \
	config:FuzzPrefixSetEntry config:FuzzNeighborSetEntry \
	config:FuzzFilter config:FuzzParseRate \
	api:FuzzParsePrefix api:FuzzHandler
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz $$fn in ./$$pkg/ for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg/; \
	done

# CI: each target briefly (5-10 s here), by execution count: a -fuzztime
# duration can end in a spurious "context deadline exceeded" on Go 1.26
# (go.dev/issue/75804, fixed in 1.27), which failed a CI run.
FUZZ_BRIEF := bpf:FuzzXDP:100000x \
	config:FuzzParse:60000x config:FuzzLoad:4000x config:FuzzScanLines:100000x \
	config:FuzzPrefixSetEntry:100000x config:FuzzNeighborSetEntry:100000x \
	config:FuzzFilter:20000x config:FuzzParseRate:100000x \
	api:FuzzParsePrefix:100000x api:FuzzHandler:20000x
fuzz-brief:
	@set -e; for t in $(FUZZ_BRIEF); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$${rest#*:}; \
		echo "fuzz $$fn in ./$$pkg/ for $$n"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $$n ./$$pkg/; \
	done

# Each benchmark runs its baseline in the same run and prints ratios:
# XDP lookup cost by table size, batched vs per-route netlink writes,
# per-packet cost of compiled vs trie vs bpf_fib_lookup at 10 routes and a
# full table (test/bench BenchmarkLookup), forwarding through r by the
# kernel vs XDP with each lookup (BenchmarkForwarding), and BGP
# convergence and churn of xdprouterd vs BIRD 2 (BenchmarkConvergence,
# BenchmarkChurn; docs/BENCHMARKS.md), and the forwarding gap when the
# preferred upstream's link fails, xdprouterd with PIC vs BIRD 2 with kernel
# forwarding (BenchmarkFailover), and frames lost across a kill -9 and
# restart of xdprouterd with a full table, pinned vs not (BenchmarkRestart),
# and a spoofed flood dropped by an XDP filter rule vs the same nftables rule
# in the ingress and forward hooks (BenchmarkFilterDrop), and policy rules: the per-packet cost of
# 0-100 ip rules in XDP and in bpf_fib_lookup (BenchmarkRuleCost) and the forwarding rate with 100
# rules and three tables, kernel vs XDP (BenchmarkPolicyForwarding). BENCH=quick runs only the BGP ones, with
# small tables (a few minutes); CONVERGENCE_ONLY=1 runs convergence and
# churn at full size without the others.
ifeq ($(BENCH),quick)
BENCH_BGP_ENV := XDPROUTER_BENCH_TABLE=50000 XDPROUTER_BENCH_CHURN_TABLE=20000 \
	XDPROUTER_BENCH_CHURN=10000 XDPROUTER_BENCH_CHURN_SECONDS=8
BENCH_FAILOVER_ENV := XDPROUTER_BENCH_FAILOVER=10000
endif
bench:
ifneq ($(BENCH),quick)
ifeq ($(CONVERGENCE_ONLY),)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./bpf/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./fib/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./lpm/
	$(GO) test -run '^$$' -bench . -benchtime 1x ./sync/
	$(GO) test -run '^$$' -bench '^Benchmark(Forwarding|Lookup|FilterDrop|RuleCost|PolicyForwarding)$$' -benchtime 4x -timeout 30m ./test/bench/
endif
endif
	$(BENCH_BGP_ENV) $(GO) test -run '^$$' -bench '^Benchmark(Convergence|Churn)$$' -benchtime 1x -timeout 40m ./test/bench/
ifeq ($(CONVERGENCE_ONLY),)
	$(BENCH_FAILOVER_ENV) $(GO) test -run '^$$' -bench '^BenchmarkFailover$$' -benchtime 1x -timeout 40m ./test/bench/
	$(BENCH_BGP_ENV) $(GO) test -run '^$$' -bench '^BenchmarkRestart$$' -benchtime 1x -timeout 40m ./test/bench/
endif

# The demo: a BGP upstream, a client and xdprouterd in namespaces.
lab: deps build
	$(BIN)/xdprouter-lab -duration $(DURATION)

clean:
	rm -rf $(BIN)
