# syntax=docker/dockerfile:1
# Recognize serving image: one image for the KubeRay head (HTTP proxy, ingress, Serve controller)
# and the T4 GPU workers (classifier). KubeRay runs `ray start` in it; `recognize serve` runs
# the whole service in one container for a quick local try.
#
#   docker build -t recognize:0.1.0 .
#   docker build -t recognize:0.1.0-convnext-base \
#       --build-arg MODEL_URL=https://models.example.internal/convnext_base_300.onnx \
#       --build-arg MODEL_SHA256=<sha256> --build-arg MODEL_FILE=convnext_base_300.onnx .
#
# Base image: nvidia/cuda 13.0.2 cuDNN runtime on Ubuntu 24.04, because
#   - onnxruntime-gpu 1.31.1 on PyPI is a CUDA 13 + cuDNN 9 build (its `cuda` extra asks for
#     nvidia-cuda-runtime~=13.0, its `cudnn` extra for nvidia-cudnn-cu13~=9.0). The image's
#     system CUDA 13 libraries (cudart, cuBLAS, cuFFT, cuRAND, NVRTC) and cuDNN 9 satisfy it,
#     so the ~2 GB of pip nvidia-* wheels are not installed twice: onnxruntime.preload_dlls()
#     (the classifier calls it) falls back to the system libraries when those wheels are absent,
#     and the classifier refuses a session that did not get CUDAExecutionProvider;
#   - CUDA 13.0 is the oldest CUDA 13, so it has the lowest driver floor (R580) for the T4 node
#     pool; CUDA 13 still supports Turing (sm_75, the T4): it dropped only Maxwell to Volta;
#   - "runtime", not "devel": every dependency is a wheel, nothing is compiled;
#   - Ubuntu 24.04 ships Python 3.12, for which Ray and onnxruntime-gpu publish wheels.
# Pin it by digest in a release pipeline: --build-arg BASE_IMAGE=nvidia/cuda@sha256:...
ARG BASE_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ARG ORT_GPU_VERSION=1.31.1
ARG APP_UID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# wget: KubeRay's exec readiness probes on Serve workers run `wget ... | grep success`.
# bash: KubeRay starts Ray with `/bin/bash -c "ulimit -n 65536; ray start ..."`.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.12 python3.12-venv ca-certificates wget \
    && rm -rf /var/lib/apt/lists/*

# Ubuntu images ship a user `ubuntu` with uid 1000; Ray's own images and the chart's
# securityContext use uid/gid 1000 for the non-root Ray user, so that user becomes ours.
RUN userdel --remove ubuntu 2>/dev/null || true; \
    groupadd --gid "${APP_UID}" recognize \
    && useradd --uid "${APP_UID}" --gid "${APP_UID}" --create-home --shell /bin/bash recognize

# The venv is owned by root and read-only to the app user. Ray must be on PATH for `ray start`;
# the profile.d line keeps it there in a login shell (KubeRay's ENABLE_LOGIN_SHELL=true).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    RECOGNIZE_HOST=0.0.0.0
RUN python3.12 -m venv "${VIRTUAL_ENV}" \
    && echo "export PATH=${VIRTUAL_ENV}/bin:\${PATH}" > /etc/profile.d/recognize-venv.sh

# Dependencies first (only pyproject.toml), so a source change does not reinstall them.
# pyproject lists the CPU `onnxruntime` (what tests and laptops use); here it is swapped for
# onnxruntime-gpu. Both ship the same `onnxruntime` module, so the CPU one must never be
# installed beside it: it is left out of the requirements, not installed and then removed.
WORKDIR /tmp/build
COPY pyproject.toml ./
RUN python -c 'import re, sys, tomllib; \
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
name = lambda d: re.match(r"[A-Za-z0-9._-]+", d)[0].lower(); \
kept = [d for d in deps if name(d) != "onnxruntime"]; \
sys.exit("pyproject.toml no longer lists onnxruntime") if len(kept) == len(deps) else None; \
print("\n".join(kept))' > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt "onnxruntime-gpu==${ORT_GPU_VERSION}" \
    && python -c 'import importlib.metadata as md; \
names = {d.metadata["Name"].lower() for d in md.distributions()}; \
assert "onnxruntime-gpu" in names, "onnxruntime-gpu missing"; \
assert not names & {"onnxruntime", "torch"}, names & {"onnxruntime", "torch"}'

# The package itself, without dependencies (they are above, with the GPU onnxruntime).
COPY README.md ./
COPY service ./service
COPY models ./models
RUN pip install --no-cache-dir --no-deps . \
    && recognize --help > /dev/null \
    && python -c 'import onnxruntime, ray; print("onnxruntime", onnxruntime.__version__, \
onnxruntime.get_available_providers(), "ray", ray.__version__)' \
    && rm -rf /tmp/build
WORKDIR /home/recognize

# The model is not baked in by default: the chart mounts a PersistentVolumeClaim at /models or
# fetches the file there in an init container. For air-gapped clusters, bake one in with
# MODEL_URL + MODEL_SHA256 (checked) and set the chart's model.source=image, model.file=MODEL_FILE;
# the vehicle gate beside it with GATE_URL + GATE_SHA256 and the chart's gate.file=GATE_FILE
# (a URL without its sha256 stops the build).
ARG MODEL_URL=""
ARG MODEL_SHA256=""
ARG MODEL_FILE=model.onnx
ARG GATE_URL=""
ARG GATE_SHA256=""
ARG GATE_FILE=vehicle_gate.onnx
RUN mkdir -p /models \
    && python -c 'import hashlib, os, sys, urllib.request; \
args = sys.argv[1:]; \
files = [args[i:i + 3] for i in range(0, len(args), 3) if args[i]]; \
unchecked = [url for url, want, _ in files if not want]; \
sys.exit(f"{unchecked}: a URL needs its sha256") if unchecked else None; \
data = {dest: urllib.request.urlopen(url, timeout=300).read() for url, _, dest in files}; \
got = {dest: hashlib.sha256(data[dest]).hexdigest() for _, _, dest in files}; \
wrong = [f"sha256 of {u} is {got[d]}, expected {w}" for u, w, d in files if got[d] != w.lower()]; \
sys.exit("; ".join(wrong)) if wrong else None; \
[(open(dest, "wb").write(data[dest]), os.chmod(dest, 0o444)) for _, _, dest in files]' \
        "${MODEL_URL}" "${MODEL_SHA256}" "/models/${MODEL_FILE}" \
        "${GATE_URL}" "${GATE_SHA256}" "/models/${GATE_FILE}"

USER ${APP_UID}:${APP_UID}
# 8000 Serve HTTP, 8080 Ray metrics export, 8265 Ray dashboard, 6379 GCS, 10001 Ray client.
EXPOSE 8000 8080 8265 6379 10001
CMD ["recognize", "serve"]
