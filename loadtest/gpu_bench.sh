#!/usr/bin/env bash
# GPU benchmark on a machine with an NVIDIA GPU (run from the repository root).
#
# Wheels that the machine lacks (onnxruntime-gpu, ray[serve], fastapi, pydantic, ...) arrive
# as one tar split into parts (the device tool carries at most 64 MiB per call): stage each part
# but the last into $PARTS with `gpu_bench.sh stage N`, then `gpu_bench.sh run LAST [options]`
# stages the last, joins, installs into /tmp/site and runs loadtest/gpu_bench.py with the
# options, writing results into ${OUT:-results/gpu}.
# Build the parts here first with loadtest/gpu_wheels.sh.
set -euo pipefail
PARTS=${PARTS:-/tmp/gpuparts}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-results/gpu}

case "${1:-run}" in
  stage)
    mkdir -p "$PARTS"
    cp ".gpuwheels/part.$2" "$PARTS/"
    ls -la "$PARTS"
    ;;
  run)
    [ -f ".gpuwheels/part.${2:-}" ] && cp ".gpuwheels/part.$2" "$PARTS/"
    mkdir -p "$SITE" /tmp/gpuwheels "$OUT"
    cat "$PARTS"/part.* | tar xf - -C /tmp/gpuwheels
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" /tmp/gpuwheels/*.whl
    export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    python3 -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())"
    python3 -m loadtest.gpu_bench --out "$OUT" "${@:3}"
    ;;
esac
