"""The vehicle taxonomy: classes, their parent classes, and per-class switches.

The default is the Mercedes-Benz taxonomy shipped inside the package
(``service/core/data/taxonomy.yaml``, read with ``importlib.resources`` so an installed package
finds it wherever it lies; the comments there explain every field). Any other file of the same
shape can be loaded with ``load_taxonomy(path)``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DATA = resources.files("service.core") / "data"
TAXONOMY_RESOURCE = DATA / "taxonomy.yaml"


class VehicleClass(BaseModel):
    """One class of the taxonomy: what the model tells apart, and the switches production sets
    on it. The one vocabulary for a class, from the model file to the API."""

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


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Read and validate a taxonomy file; None: the packaged Mercedes-Benz taxonomy."""
    text = (TAXONOMY_RESOURCE if path is None else Path(path)).read_text(encoding="utf-8")
    return Taxonomy.model_validate(yaml.safe_load(text))


@cache
def default_taxonomy() -> Taxonomy:
    return load_taxonomy()


@cache
def taxonomy_at(path: Path | None) -> Taxonomy:
    """The taxonomy a service runs with (setting ``taxonomy_path``), read once per process;
    None: the packaged Mercedes-Benz taxonomy."""
    return default_taxonomy() if path is None else load_taxonomy(path)
