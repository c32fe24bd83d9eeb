# Recognize service image (CPU). The GPU image for the T4 cluster (CUDA runtime +
# onnxruntime-gpu) replaces this one in the deployment work; no model is baked in:
# mount one and point RECOGNIZE_MODEL_PATH at it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    RECOGNIZE_HOST=0.0.0.0

RUN useradd --create-home --uid 1000 recognize
WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p service models && touch service/__init__.py models/__init__.py \
    && pip install --no-cache-dir . && pip uninstall -y recognize

COPY service ./service
COPY models/__init__.py models/
COPY models/taxonomy ./models/taxonomy
RUN pip install --no-cache-dir --no-deps .

USER recognize
EXPOSE 8000
CMD ["recognize", "serve"]
