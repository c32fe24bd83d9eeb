#!/usr/bin/env bash
# Headless Locust run of the dealer-audit workload (loadtest/locustfile.py) against a deployment,
# with every report in one folder: Locust's CSVs and HTML report, the per-stage summary
# (locust_stages.json), every request (locust_requests.csv) and latency over time (latency.png).
#
# Usage: loadtest/run.sh [URL] [extra locust options...]
#   URL                 default http://127.0.0.1:8000
#   LOADTEST_RUN_TIME   total run time, the stages scaled to it (default 3m; e.g. 90s, 10m)
#   LOADTEST_USERS      users at the burst's peak; the other stages are shares of it (default 16)
#   LOADTEST_RESULTS    results folder (default results/loadtest-<timestamp>)
#   RECOGNIZE_API_KEY   sent as "Authorization: Bearer ..." when set
#   LOADTEST_SEED       seed of the generated photos and VINs (default 0)
# Exit status: Locust's (1 when any request failed), or 2 when no report could be written.
# The run stops by itself: Locust ends with the last stage, and a hard timeout backs that up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
URL="${1:-http://127.0.0.1:8000}"
shift || true
RUN_TIME="${LOADTEST_RUN_TIME:-3m}"
USERS="${LOADTEST_USERS:-16}"
OUT="${LOADTEST_RESULTS:-results/loadtest-$(date +%Y%m%d-%H%M%S)}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
LOCUST="${LOCUST:-$(dirname "$PYTHON")/locust}"

to_seconds() {  # 90 / 90s / 3m / 1h30m -> seconds
    local text="$1" total=0 number unit
    [[ "$text" =~ ^[0-9]+$ ]] && { echo "$text"; return; }
    while [[ "$text" =~ ^([0-9]+)([hms])(.*)$ ]]; do
        number="${BASH_REMATCH[1]}" unit="${BASH_REMATCH[2]}" text="${BASH_REMATCH[3]}"
        case "$unit" in h) total=$((total + number * 3600)) ;; m) total=$((total + number * 60)) ;;
            s) total=$((total + number)) ;; esac
    done
    [[ -z "$text" && "$total" -gt 0 ]] || { echo "bad LOADTEST_RUN_TIME: $RUN_TIME" >&2; exit 2; }
    echo "$total"
}
SECONDS_TOTAL="$(to_seconds "$RUN_TIME")"

mkdir -p "$OUT"
echo "load test: $URL, $USERS peak users, ${SECONDS_TOTAL}s -> $OUT"
status=0
# Generating the workload's photos takes a few seconds before the first request; 120 s covers
# that and the shutdown. SIGINT first so Locust still writes its reports.
timeout --signal=INT --kill-after=30 "$((SECONDS_TOTAL + 120))" \
    "$LOCUST" -f "$ROOT/loadtest/locustfile.py" --headless --host "$URL" \
    -u "$USERS" -r "$USERS" -t "${SECONDS_TOTAL}s" \
    --csv "$OUT/locust" --csv-full-history --html "$OUT/report.html" --only-summary \
    --loglevel WARNING "$@" 2>&1 | tee "$OUT/locust.log" || status=$?  # pipefail: Locust's

if [[ -f "$OUT/locust_requests.csv" ]]; then
    "$PYTHON" "$ROOT/loadtest/plot.py" "$OUT/locust" --out "$OUT/latency.png" \
        || echo "latency plot failed (is matplotlib installed?)" >&2
else
    echo "no requests were recorded; see $OUT/locust.log" >&2
    [[ "$status" -ne 0 ]] || status=2
fi
echo "results: $OUT (report.html, latency.png, locust_stats.csv, locust_stages.json)"
exit "$status"
