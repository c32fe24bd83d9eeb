"""Paths of the checkout the tests run in."""

from pathlib import Path

from service.settings import DEMO_MODEL

REPO = Path(__file__).resolve().parent.parent
DEMO_MODEL_PATH = REPO / DEMO_MODEL
