# Recognize: two set-up commands on a fresh machine.
#   make run    create .venv, install, build the demo model if missing, serve on 127.0.0.1:8000
#   make test   the same set-up, then the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_MODEL := models/demo/convnext_tiny_224_demo.onnx
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: help run test lint model venv clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The models extra pins torch 2.14.1 + torchvision 0.29.1 (they work together under timm).
	$(PY) -m pip install --quiet -e '.[models,dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install everything

$(DEMO_MODEL): $(STAMP) models/taxonomy/taxonomy.yaml
	$(PY) -m models.export --arch convnext_tiny --demo --seed 0 --out $(DEMO_MODEL)

model: $(DEMO_MODEL) ## build the demo model (ConvNeXt-Tiny @224, seeded weights)

run: $(DEMO_MODEL) ## serve the demo model on http://127.0.0.1:8000
	$(VENV)/bin/recognize serve

test: $(DEMO_MODEL) ## run the whole test suite
	$(PY) -m pytest

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

clean: ## remove the venv and built models
	rm -rf $(VENV) $(DEMO_MODEL) *.egg-info
