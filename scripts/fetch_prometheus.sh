#!/usr/bin/env bash
# Puts Debian's `prometheus` and `promtool` into .tools/bin (git-ignored), without a system-wide
# install: `apt-get download` fetches the .deb as a file and `dpkg -x` unpacks it under .tools.
# The binaries are static Go builds that need only libc6; the package's other dependencies
# (adduser, init-system-helpers, the JavaScript libraries of the web UI) serve the system
# service and the browser UI, which the tests do not use.
#
# Idempotent: once both binaries run, a second call only prints the version.
# Usage: scripts/fetch_prometheus.sh   (from anywhere; TOOLS_DIR overrides .tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS/bin"

if [[ -x "$BIN/prometheus" && -x "$BIN/promtool" ]] && "$BIN/promtool" --version >/dev/null 2>&1; then
    "$BIN/prometheus" --version 2>&1 | head -n 1
    exit 0
fi

mkdir -p "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
# apt-get download writes into the current directory and needs no root; a machine whose
# package lists are missing or stale gets them refreshed once, then the download is retried.
if ! apt-get download prometheus >/dev/null 2>&1; then
    echo "apt-get download prometheus failed; running apt-get update once" >&2
    apt-get update >/dev/null
    apt-get download prometheus
fi
DEB="$(ls prometheus_*.deb)"
dpkg -x "$DEB" "$WORK/root"
for tool in prometheus promtool; do
    install -m 0755 "$WORK/root/usr/bin/$tool" "$BIN/$tool"
done

"$BIN/promtool" --version >/dev/null
"$BIN/prometheus" --version 2>&1 | head -n 1
