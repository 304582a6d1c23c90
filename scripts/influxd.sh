#!/usr/bin/env bash
# Starts a private InfluxDB 1.8.10 (v2 write API and Flux enabled) with its
# data under DIR, listening on 127.0.0.1:PORT, and creates the database
# "city". Builds influxd with `go install` first if it is not installed.
# Prints the PID; logs go to DIR/influxd.log. With INFLUXD_TLS_CERT and
# INFLUXD_TLS_KEY (PEM files) it speaks HTTPS only.
#   scripts/influxd.sh DIR PORT
set -euo pipefail
dir=$1 port=$2
influxd=$(command -v influxd || true)
[[ -n $influxd ]] || influxd="$(go env GOPATH)/bin/influxd"
if [[ ! -x $influxd ]]; then
  echo "building influxd 1.8.10 (about a minute, once)..." >&2
  go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10 >&2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cat > "$dir/influxd.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((port + 2))"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  flux-enabled = true
  log-enabled = false
$(if [[ -n ${INFLUXD_TLS_CERT:-} ]]; then printf '  https-enabled = true\n  https-certificate = "%s"\n  https-private-key = "%s"\n' "$INFLUXD_TLS_CERT" "$INFLUXD_TLS_KEY"; fi)
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
CONF
# In its own session, so that a Ctrl-C meant for the server does not stop
# InfluxDB before the server has written what it buffered.
setsid "$influxd" run -config "$dir/influxd.conf" > "$dir/influxd.log" 2>&1 < /dev/null &
pid=$!
scheme=http curlopts=()
if [[ -n ${INFLUXD_TLS_CERT:-} ]]; then scheme=https curlopts=(-k); fi
for _ in $(seq 1 300); do # up to a minute: a busy machine, a data directory to reopen
  if curl "${curlopts[@]}" -fsS -o /dev/null "$scheme://127.0.0.1:$port/ping" 2>/dev/null; then
    curl "${curlopts[@]}" -fsS -o /dev/null -XPOST "$scheme://127.0.0.1:$port/query" --data-urlencode 'q=CREATE DATABASE city'
    echo "$pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "influxd exited; its log:" >&2
    cat "$dir/influxd.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "influxd did not answer on 127.0.0.1:$port within 60s; its log:" >&2
tail -20 "$dir/influxd.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
