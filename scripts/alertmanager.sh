#!/usr/bin/env bash
# Builds Prometheus Alertmanager v0.35.0 into $(go env GOPATH)/bin when it
# is not there. `go install` cannot: the module is published without its
# web UI's built files (`pattern app/dist: no matching files found`), so
# it builds ./cmd/alertmanager from a writable copy of the module with a
# placeholder page where the UI would be (the API and the notifications,
# which cityscreen uses, do not need it). Prints the binary's path.
#   scripts/alertmanager.sh
set -euo pipefail
version=v0.35.0
bin="$(go env GOPATH)/bin/alertmanager"
if [[ -x $bin ]] && "$bin" --version 2>&1 | grep -q "version ${version#v}"; then
  echo "$bin"
  exit 0
fi
echo "building alertmanager $version (about a minute, once)..." >&2
src=$(cd "$(mktemp -d)" && pwd)
trap 'chmod -R u+w "$src" 2>/dev/null; rm -rf "$src"' EXIT
mod=$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus/alertmanager@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $mod ]] || { echo "alertmanager $version: the module could not be downloaded" >&2; exit 1; }
cp -r "$mod" "$src/alertmanager"
chmod -R u+w "$src/alertmanager"
for ui in elm mantine; do
  mkdir -p "$src/alertmanager/ui/app/dist/$ui"
  echo '<!doctype html><title>Alertmanager</title><p>The web UI is not built in this binary; the API is served.' > "$src/alertmanager/ui/app/dist/$ui/index.html"
done
(cd "$src/alertmanager" && go build -ldflags "-X github.com/prometheus/common/version.Version=${version#v}" -o "$bin" ./cmd/alertmanager)
echo "$bin"
