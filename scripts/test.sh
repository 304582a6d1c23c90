#!/usr/bin/env bash
# make test: starts a private InfluxDB and Mosquitto on their own ports,
# runs every test with -race against them, and stops them again. A service
# that cannot be started fails the run; no test is skipped for want of one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh # Debian packages, a CJK font, InfluxDB and Alertmanager, when missing
work=$(mktemp -d /tmp/cityscreen-test.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

influx_port=${CITYSCREEN_TEST_INFLUX_PORT:-18086}
mqtt_port=${CITYSCREEN_TEST_MQTT_PORT:-18883}

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
pids+=($!)
pids+=("$(scripts/influxd.sh "$work/influx" "$influx_port")")
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && break
  sleep 0.1
done

export CITYSCREEN_TEST_INFLUX_URL="http://127.0.0.1:$influx_port"
export CITYSCREEN_TEST_MQTT_URL="tcp://127.0.0.1:$mqtt_port"
export CITYSCREEN_TEST_MOSQUITTO_PORT="$mqtt_port"
# Tests start their own Alertmanagers, each with a webhook receiver the
# test owns.
CITYSCREEN_TEST_ALERTMANAGER="$(scripts/alertmanager.sh)"
export CITYSCREEN_TEST_ALERTMANAGER
if [[ ${1:-} == -soak ]]; then # make soak: the wall for an hour, nothing else
  go test -tags soak -count=1 -timeout 3h -run '^TestSoakWall$' -v ./internal/app
  exit
fi
# Unformatted code and an untidy go.mod fail the run here, not in a later
# commit.
unformatted=$(gofmt -l cmd internal dashboard/*.go)
if [[ -n $unformatted ]]; then
  echo "not gofmt-formatted (run gofmt -w): $unformatted" >&2
  exit 1
fi
go mod tidy -diff || { echo "go.mod and go.sum are not tidy: run go mod tidy" >&2; exit 1; }
go vet ./...
go test -race -count=1 -timeout 10m -skip '^(TestFault|TestCluster)' "$@" ./...
# Allocation counts hold only without the race detector's build.
go test -count=1 -run 'AllocatesNothing' ./cmd/citybench
# The fault tests (docs/reliability.md) and the two-instance test
# (docs/scaling.md) run on their own, after the rest, and verbosely: each
# reports published, stored, duplicates and quarantined.
go test -race -count=1 -timeout 10m -run '^(TestFault|TestCluster)' -v "$@" ./internal/app
