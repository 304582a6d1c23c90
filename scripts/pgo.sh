#!/usr/bin/env bash
# Refreshes cmd/cityscreen/default.pgo: the CPU profile that `go build` uses
# for cityscreen's profile-guided optimisation (inlining and devirtualising
# what the profile shows hot). It records 30 s of cityscreen under
# citybench's city stream at 25,000 readings a second with 100 websocket
# clients, against a private Mosquitto with raised limits (so that nothing
# is dropped) and a private InfluxDB. Run it after changing the hot paths
# (ingest, feed decoding, the log, the panels, the hub), then measure as
# docs/benchmarks.md says.
#   scripts/pgo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make build >/dev/null
work=$(mktemp -d)
mqtt=$((20000 + RANDOM % 10000)) pprof=$((30000 + RANDOM % 10000))
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 1000000\n' "$mqtt" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
CITYSCREEN_DEBUG_PPROF_ADDR=127.0.0.1:$pprof bin/citybench -broker "tcp://127.0.0.1:$mqtt" \
  -rate 25000 -duration 45s -clients 100 > "$work/citybench.txt" 2>&1 &
bench=$!
sleep 15 # cityscreen started and the stream steady
curl -fsS -o "$work/cpu.pprof" "http://127.0.0.1:$pprof/debug/pprof/profile?seconds=30"
wait $bench || { cat "$work/citybench.txt" >&2; exit 1; }
tail -n 1 "$work/citybench.txt"
mv "$work/cpu.pprof" cmd/cityscreen/default.pgo
echo "cmd/cityscreen/default.pgo refreshed; rebuild with make build"
