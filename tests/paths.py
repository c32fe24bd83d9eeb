"""Paths of the checkout the tests run in."""

from pathlib import Path

from service.settings import DEMO_GATE, DEMO_MODEL

REPO = Path(__file__).resolve().parent.parent
DEMO_MODEL_PATH = REPO / DEMO_MODEL
GATE_MODEL_PATH = REPO / DEMO_GATE  # `make gate` builds it (make test and make run do)
