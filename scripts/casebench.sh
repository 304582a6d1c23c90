#!/usr/bin/env bash
# Measures a restart with about 10^6 open cases (docs/benchmarks.md): the
# shipped configuration against its own Mosquitto (raised queue limits) and
# an InfluxDB at CITYSCREEN_INFLUX_URL; citysim opens the cases at 10,000
# events a second for 100 s; then cityscreen is killed with SIGKILL and
# started, stopped with SIGTERM and started, and each time the open cases
# (the citizen-services screen's cases-open panel) and the time until
# /readyz answers are printed, with the server's lines on its case book.
#   make build && CITYSCREEN_INFLUX_URL=http://127.0.0.1:8086 scripts/casebench.sh [WORKDIR]
set -euo pipefail
: "${CITYSCREEN_INFLUX_URL:?the InfluxDB to store in}"
work=${1:-.run/casebench}
rm -rf "$work" && mkdir -p "$work"
port=${CASEBENCH_MQTT_PORT:-28884} http=${CASEBENCH_HTTP:-127.0.0.1:18090}
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n' "$port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
broker=$!
token=casebench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export CITYSCREEN_MQTT_URL=tcp://127.0.0.1:$port CITYSCREEN_STATE_DIR=$work/state CITYSCREEN_HTTP_ADDR=$http \
  CITYSCREEN_ADMIN_TOKEN=$token CITYSCREEN_AUTH_AUDIT_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n') CITYSCREEN_LOG_LEVEL=debug
server=
serve() { bin/cityscreen serve -config config/cityscreen.yaml 2>> "$work/server.log" & server=$!; }
ready() {
  local t0; t0=$(date +%s.%N)
  until curl -fsS -o /dev/null "http://$http/readyz" 2>/dev/null; do sleep 0.1; done
  echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"
}
open_cases() {
  curl -fsS -H "Authorization: Bearer $token" "http://$http/api/screens/citizen-services" |
    python3 -c 'import json,sys; print({p["id"]: p.get("value") for p in json.load(sys.stdin)["panels"] if p["id"].startswith("cases-") and p.get("value") is not None})'
}
book() { grep -E "case book|case feed" "$work/server.log" | tail -"$1" | cut -c1-300 || true; }
trap 'kill $server $broker 2>/dev/null || true' EXIT
serve; ready
bin/citysim -broker "tcp://127.0.0.1:$port" -feeds citizen-cases -rate 10000 -conns 4 -duration 100s 2> "$work/citysim.log"
tail -1 "$work/citysim.log"
sleep 20
echo "== before"; open_cases; book 3
kill -KILL "$server"; wait "$server" 2>/dev/null || true
echo "== after SIGKILL"; serve; ready; open_cases; book 1
grep -E 'VmHWM|VmRSS' "/proc/$server/status"
kill -TERM "$server"; wait "$server" 2>/dev/null || true
echo "== after SIGTERM"; serve; ready; open_cases; book 2
