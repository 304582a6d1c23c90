#!/usr/bin/env bash
# deps.sh: installs what make test needs and this machine lacks: Debian's
# mosquitto, chromium and a Chinese font (the dashboard's tests read the
# Chinese wall; without a CJK font Chromium draws every character as a
# box), curl, InfluxDB 1.8.10 built with go install, and Alertmanager
# v0.35.0 (scripts/alertmanager.sh). As root on Debian
# it installs; otherwise it says what is missing and fails.
#   scripts/deps.sh        what make test needs
#   scripts/deps.sh npm    Node.js and npm alone, for the dashboard's assets
set -euo pipefail
need=()
command -v npm >/dev/null || need+=(npm)
if [[ ${1:-} != npm ]]; then
command -v mosquitto >/dev/null || need+=(mosquitto)
command -v chromium >/dev/null || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
command -v fc-list >/dev/null && [[ -n "$(fc-list :lang=zh family)" ]] || need+=(fonts-wqy-microhei)
fi
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
[[ ${1:-} == npm ]] && exit 0
command -v influxd >/dev/null || [[ -x "$(go env GOPATH)/bin/influxd" ]] || go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10
scripts/alertmanager.sh >/dev/null
