#!/usr/bin/env bash
# iproute2's `ip` for the multi-node tests (tests/cluster make network namespaces with it).
# Debian images usually have it; a slim one may not. Installs it with apt-get when missing and
# this runs as root (as CI does); otherwise says what is missing and leaves the tests to fail
# with the same message.
# Usage: scripts/ensure_iproute2.sh
set -euo pipefail

if command -v ip >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "iproute2 (ip) is missing and this is not root: the tests in tests/cluster will fail;" \
        "install it with: apt-get install iproute2" >&2
    exit 0
fi
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 >/dev/null; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 >/dev/null
fi
ip -V
