#!/usr/bin/env bash
# make run: a local cityscreen with the Harbin simulator. Starts InfluxDB
# 1.8.10 (data in .run/influx) unless CITYSCREEN_INFLUX_URL is set, the
# server with its embedded MQTT broker (unless CITYSCREEN_MQTT_URL is set),
# and citysim at $RATE messages per second (default 200). Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
pids=() # everything to stop, in start order
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  # Newest first, each gone before the next, so that cityscreen writes what
  # it buffered while InfluxDB is still there.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || continue
    for _ in $(seq 1 200); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
  done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

if [[ -z ${CITYSCREEN_INFLUX_URL:-} ]]; then
  port=${INFLUX_PORT:-8186}
  pids+=("$(scripts/influxd.sh .run/influx "$port")")
  export CITYSCREEN_INFLUX_URL="http://127.0.0.1:$port"
  echo "InfluxDB 1.8.10 on $CITYSCREEN_INFLUX_URL (database city, data in .run/influx)"
fi
# Everything but the sign-in page asks who you are. For this machine an
# admin token (for the API and the links below) and the password of the
# user "admin" (for signing in) are made unless given, kept in .run/.
if [[ -z ${CITYSCREEN_ADMIN_TOKEN:-} && -z ${CITYSCREEN_ADMIN_TOKEN_FILE:-} ]]; then
  [[ -s .run/admin-token ]] || (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > .run/admin-token)
  export CITYSCREEN_ADMIN_TOKEN_FILE=.run/admin-token
fi
if [[ -z ${CITYSCREEN_ADMIN_PASSWORD:-} && -z ${CITYSCREEN_ADMIN_PASSWORD_FILE:-} ]]; then
  [[ -s .run/admin-password ]] || (umask 077 && od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > .run/admin-password)
  export CITYSCREEN_ADMIN_PASSWORD_FILE=.run/admin-password
fi
# The audit key signs the audit log's head; it lives outside the state
# directory (.run/audit-key, beside .run/state).
if [[ -z ${CITYSCREEN_AUTH_AUDIT_KEY:-} && -z ${CITYSCREEN_AUTH_AUDIT_KEY_FILE:-} ]]; then
  [[ -s .run/audit-key ]] || (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > .run/audit-key)
  export CITYSCREEN_AUTH_AUDIT_KEY_FILE=.run/audit-key
fi
token=${CITYSCREEN_ADMIN_TOKEN:-$(cat "${CITYSCREEN_ADMIN_TOKEN_FILE}")}
export CITYSCREEN_STATE_DIR=${CITYSCREEN_STATE_DIR:-.run/state}
export CITYSCREEN_HTTP_ADDR=${CITYSCREEN_HTTP_ADDR:-127.0.0.1:8080}
broker=${CITYSCREEN_MQTT_URL:-tcp://127.0.0.1:1884}

bin/cityscreen serve -config "${CITYSCREEN_CONFIG:-config/cityscreen.yaml}" 2> >(tee .run/cityscreen.log >&2) &
server=$!
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://$CITYSCREEN_HTTP_ADDR/healthz" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "cityscreen did not start; see above" >&2; exit 1; }
  sleep 0.1
done
bin/citysim -broker "$broker" -rate "${RATE:-200}" 2> .run/citysim.log &
pids+=($!)
# The wall signs in as a display: a read-only token bound to its screen.
mktoken() {
  curl -fsS -H "Authorization: Bearer $token" -H "Content-Type: application/json" -d "$1" \
    "http://$CITYSCREEN_HTTP_ADDR/api/tokens" 2>/dev/null | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' || true
}
name="make-run-wall-$(date +%s)"
display=$(mktoken '{"name":"'"$name"'","kind":"display","screens":["city-overview"],"playlists":["command-centre"]}')
# A configuration without the demo playlist: the screen alone.
[[ -n $display ]] || display=$(mktoken '{"name":"'"$name"'","kind":"display","screens":["city-overview"]}')
password_hint="the password in ${CITYSCREEN_ADMIN_PASSWORD_FILE:-CITYSCREEN_ADMIN_PASSWORD}"

cat <<MSG

  cityscreen is running, fed by the Harbin simulator at ${RATE:-200} messages/s.

  Sign in:         http://$CITYSCREEN_HTTP_ADDR/login.html  as admin, with $password_hint
  Wall screen:     http://$CITYSCREEN_HTTP_ADDR/wall.html?screen=city-overview#token=$display
                   (a display token: revoke it with DELETE /api/tokens/{id})
  Wall rotation:   http://$CITYSCREEN_HTTP_ADDR/wall.html?playlist=command-centre#token=$display
  Alerts:          http://$CITYSCREEN_HTTP_ADDR/alerts.html
  Phone summary:   http://$CITYSCREEN_HTTP_ADDR/summary.html?screen=city-overview
  All screens:     http://$CITYSCREEN_HTTP_ADDR/
  Feeds, rejects:  http://$CITYSCREEN_HTTP_ADDR/feeds.html

  API:  curl -H "Authorization: Bearer \$(cat .run/admin-token)" http://$CITYSCREEN_HTTP_ADDR/api/feeds
  Logs: .run/cityscreen.log, .run/citysim.log. Ctrl-C stops everything.

MSG
# Runs until Ctrl-C or until the server stops; the simulator may be stopped
# on its own (kill the citysim process) and the screens go on.
wait "$server" || true
