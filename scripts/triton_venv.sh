#!/usr/bin/env bash
# Creates .venv-triton/ (git-ignored): the Python environment of the benchmark's Triton peer,
# loadtest/triton_server.py. It is separate from .venv because nvidia-pytriton pins numpy<2,
# which the service's own environment does not.
#
# It holds nvidia-pytriton (Triton Inference Server 2.51 ships inside the wheel) plus the pure
# dependencies of the service modules the Triton peer imports from the repository through
# PYTHONPATH (service.core, service.inference.predictor): the same
# preprocessing and VIN decoding as the service, never a copy. Ray is not installed here.
#
# Idempotent: a second call with unchanged requirements only prints the versions.
# Usage: scripts/triton_venv.sh   (from anywhere; PYTHON picks the interpreter, TRITON_VENV the
#        folder; about 1 minute and ~700 MB)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRITON_VENV:-$ROOT/.venv-triton}"
PYTHON="${PYTHON:-python3}"

REQUIREMENTS=(
    "nvidia-pytriton==0.7.0"
    "numpy<2"
    "onnxruntime>=1.20"
    "pillow>=10.4"
    "simplejpeg>=1.8"
    "pydantic>=2.7"
    "pydantic-settings>=2.3"
    "pyyaml>=6.0"
)
STAMP="$VENV/.installed"
WANTED="$(printf '%s\n' "${REQUIREMENTS[@]}")"

check() {
    PYTHONPATH="$ROOT" "$VENV/bin/python" - <<'EOF'
import numpy, onnxruntime, PIL, pytriton
from importlib.metadata import version
from service.core.imaging import prepare_image  # noqa: F401  (the service's preprocessing imports)
from service.core.vin import decode_vin
assert decode_vin("WDD2052041F123456").expected_parent
print(f"nvidia-pytriton {version('nvidia-pytriton')}, numpy {numpy.__version__}, "
      f"onnxruntime {onnxruntime.__version__}, pillow {PIL.__version__}")
EOF
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANTED" ]] && check 2>/dev/null; then
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}"
check
printf '%s\n' "$WANTED" >"$STAMP"
echo "Triton venv ready: $VENV"
