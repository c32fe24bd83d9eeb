"""The vehicle gate: is there a vehicle in the photo at all? Pure numpy and pydantic.

A closed-set classifier names one of its classes whatever the photo shows, so a photo of a
document or a person with the right VIN could come out a confident match (thesis "Comparing
Vision Transformers to Traditional Deep Learning Object Classification Architectures for
Automotive Make and Model Recognition", 1.3 and 5.5). The gate is a second, ImageNet-1k
classifier (EfficientNet-Lite0, ``service/modeltools/pretrained.py``) run on the same input
batch; its vehicle probability is the softmax mass of ImageNet's vehicle classes
(``service/core/data/vehicle_classes.yaml``: cars, vans, trucks, buses, car parts). Below the
vehicle threshold the verdict is manual review, reason ``no_vehicle`` (``service.core.verdict``).

A gate model file keeps the classifier's input/output contract (``service.core.modelfile``:
uint8 ``image`` [N, H, W, 3] in, float32 ``logits`` [N, 1000] out, preprocessing inside) and
describes itself in the metadata entry ``recognize_gate`` (:class:`GateMetadata`), which also
lists the classes it sums: the file, not the service's copy of the list, says what was summed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.core.errors import ModelContractError
from service.core.modelfile import CONTRACT_VERSION, GATE_METADATA_KEY, METADATA_KEY
from service.core.taxonomy import DATA
from service.core.verdict import softmax

VEHICLE_CLASSES_RESOURCE = DATA / "vehicle_classes.yaml"
IMAGENET_CLASSES = 1000
GATE_KIND = "vehicle_gate"


class ImageNetClass(BaseModel):
    """One ImageNet-1k class: output index, WordNet id, ImageNet's description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0, lt=IMAGENET_CLASSES)
    synset: str = Field(pattern=r"^n\d{8}$")
    name: str


class VehicleClasses(BaseModel):
    """The ImageNet classes that count as a vehicle, as the data file lists them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    classes: tuple[ImageNetClass, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> VehicleClasses:
        indices = [c.index for c in self.classes]
        if len(set(indices)) != len(indices):
            raise ValueError(f"vehicle classes list an index twice: {sorted(indices)}")
        return self


def load_vehicle_classes(path: Path | str | None = None) -> VehicleClasses:
    """The vehicle classes of ``path``, or the packaged list (``data/vehicle_classes.yaml``)."""
    if path is None:
        return default_vehicle_classes()
    return VehicleClasses.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@cache
def default_vehicle_classes() -> VehicleClasses:
    """The packaged list, read once."""
    raw = yaml.safe_load(VEHICLE_CLASSES_RESOURCE.read_text(encoding="utf-8"))
    return VehicleClasses.model_validate(raw)


class GateMetadata(BaseModel):
    """The ``recognize_gate`` metadata entry of a gate model file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: int = CONTRACT_VERSION
    kind: Literal["vehicle_gate"] = GATE_KIND
    name: str
    arch: str
    version: str
    input_size: int = Field(ge=32, le=1024)
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: Literal["fp32", "fp16"] = "fp32"
    num_classes: Literal[1000] = IMAGENET_CLASSES
    vehicle_classes_version: str
    vehicle_classes: tuple[ImageNetClass, ...] = Field(min_length=1)

    @property
    def vehicle_indices(self) -> np.ndarray:
        """Output indices of the summed classes."""
        return np.array([c.index for c in self.vehicle_classes], dtype=np.intp)

    def to_json(self) -> str:
        return self.model_dump_json()


def parse_gate_metadata(custom_metadata: dict[str, str], *, source: str = "gate") -> GateMetadata:
    """Parse the ``recognize_gate`` entry of an ONNX model (``custom_metadata_map``)."""
    raw = custom_metadata.get(GATE_METADATA_KEY)
    if raw is None and METADATA_KEY in custom_metadata:
        raise ModelContractError(
            f"{source} is a car classifier ('{METADATA_KEY}' metadata), not a vehicle gate: "
            "give it as RECOGNIZE_MODEL_PATH, and a gate exported by `recognize export-gate` "
            "as RECOGNIZE_GATE_MODEL_PATH"
        )
    if raw is None:
        raise ModelContractError(
            f"{source} has no '{GATE_METADATA_KEY}' metadata entry: export the gate with "
            "`recognize export-gate` (service/modeltools/gate_export.py)"
        )
    try:
        return GateMetadata.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelContractError(
            f"{source} has invalid '{GATE_METADATA_KEY}' metadata: {exc}"
        ) from exc


def vehicle_probabilities(logits: np.ndarray, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per row of ImageNet logits [N, 1000]: the summed probability of the vehicle classes,
    float64 [N], clamped to 1 (a float sum of probabilities can pass it by an ulp)."""
    probs = softmax(logits)
    return np.minimum(probs[:, np.asarray(indices, dtype=np.intp)].sum(axis=-1), 1.0)
