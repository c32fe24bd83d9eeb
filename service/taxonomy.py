"""The vehicle taxonomy: classes, their parent classes, and per-class switches.

Loaded from ``models/taxonomy/taxonomy.yaml`` (see the comments there for every field).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

TAXONOMY_DIR = Path(__file__).resolve().parent.parent / "models" / "taxonomy"
TAXONOMY_FILE = TAXONOMY_DIR / "taxonomy.yaml"


class VehicleClass(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str
    parent: str
    body: str
    years: str = Field(pattern=r"^(\d{4})?-(\d{4})?$")
    enabled: bool = True
    match_threshold: float | None = Field(default=None, gt=0.0, le=1.0)


class Taxonomy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    classes: tuple[VehicleClass, ...]

    @model_validator(mode="after")
    def _unique(self) -> Taxonomy:
        for attr in ("id", "label"):
            values = [getattr(c, attr) for c in self.classes]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"taxonomy has duplicate class {attr}s: {dupes}")
        return self

    @property
    def parents(self) -> tuple[str, ...]:
        """Parent classes in first-seen order."""
        return tuple(dict.fromkeys(c.parent for c in self.classes))

    def by_id(self) -> dict[str, VehicleClass]:
        return {c.id: c for c in self.classes}


def load_taxonomy(path: Path | str = TAXONOMY_FILE) -> Taxonomy:
    """Read and validate a taxonomy file."""
    with open(path, encoding="utf-8") as f:
        return Taxonomy.model_validate(yaml.safe_load(f))


@cache
def default_taxonomy() -> Taxonomy:
    return load_taxonomy(TAXONOMY_FILE)
