"""The real photos of the test data (scripts/fetch_test_data.sh, `make data`), by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import REPO

PHOTOS = REPO / ".data" / "photos"


def photo(name: str) -> Path:
    """A real photo, e.g. ``photo("darknet/dog.jpg")``; fails clearly when the data is missing."""
    path = PHOTOS / name
    if not path.is_file():
        pytest.fail(f"test photo {path} missing: run `make data` (make test does)")
    return path
