"""The model-file contract: what an ONNX model must say about itself to be served.

A servable model has one input ``image`` (uint8, ``[N, H, W, 3]`` RGB, H = W = input_size) and
one output ``logits`` (float32, ``[N, C]``); the cast, scaling, normalisation and NCHW transpose
happen inside the graph, so preprocessing is defined once, by the model itself.

It describes itself through one ``metadata_props`` entry, key ``recognize``, holding the JSON of
:class:`ModelMetadata`: architecture, version, input size, interpolation and the class list in
output order (id, label, parent). The service refuses a model without it, or whose classes do not
match the taxonomy it runs with.

The vehicle gate (``service.core.gate``) is a model file of another kind under the same
input/output contract: it describes itself in a second entry, key ``recognize_gate``, so neither
kind can be served as the other.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.core.errors import ModelContractError
from service.core.taxonomy import Taxonomy, VehicleClass

METADATA_KEY = "recognize"
GATE_METADATA_KEY = "recognize_gate"
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
CONTRACT_VERSION = 1


class ModelClass(BaseModel):
    """A model output as the file records it; the taxonomy's ``VehicleClass`` says the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    label: str
    parent: str


class ModelMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contract: int = CONTRACT_VERSION
    name: str
    arch: str
    version: str
    taxonomy_version: str
    input_size: int = Field(ge=32, le=1024)
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: Literal["fp32", "fp16"] = "fp32"
    classes: tuple[ModelClass, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique_ids(self) -> ModelMetadata:
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError("class ids in the model metadata are not unique")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    def check_against(self, taxonomy: Taxonomy) -> None:
        """Raise :class:`ModelContractError` unless the model's classes are the taxonomy's."""
        known = taxonomy.by_id()
        model_ids = {c.id for c in self.classes}
        unknown = sorted(model_ids - known.keys())
        missing = sorted(known.keys() - model_ids)
        if unknown or missing:
            raise ModelContractError(
                f"model classes do not match taxonomy {taxonomy.version}: "
                f"unknown to the taxonomy {unknown[:5]}{'...' if len(unknown) > 5 else ''}, "
                f"missing from the model {missing[:5]}{'...' if len(missing) > 5 else ''}"
            )
        wrong_parent = [c.id for c in self.classes if known[c.id].parent != c.parent]
        if wrong_parent:
            raise ModelContractError(
                f"model and taxonomy {taxonomy.version} disagree on the parent of "
                f"{wrong_parent[:5]}"
            )


def parse_metadata(custom_metadata: dict[str, str], *, source: str = "model") -> ModelMetadata:
    """Parse the ``recognize`` metadata entry of an ONNX model (``custom_metadata_map``)."""
    raw = custom_metadata.get(METADATA_KEY)
    if raw is None and GATE_METADATA_KEY in custom_metadata:
        raise ModelContractError(
            f"{source} is a vehicle gate ('{GATE_METADATA_KEY}' metadata), not a classifier: "
            "give it as the gate model (RECOGNIZE_GATE_MODEL_PATH), and a classifier exported "
            "by `recognize export` as RECOGNIZE_MODEL_PATH"
        )
    if raw is None:
        raise ModelContractError(
            f"{source} has no '{METADATA_KEY}' metadata entry: export it with "
            "`recognize export` (service/modeltools/export.py), which writes the class list and "
            "preprocessing"
        )
    try:
        return ModelMetadata.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelContractError(f"{source} has invalid '{METADATA_KEY}' metadata: {exc}") from exc


def metadata_for_taxonomy(
    taxonomy: Taxonomy,
    *,
    name: str,
    arch: str,
    version: str,
    input_size: int,
    interpolation: str,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    precision: str = "fp32",
) -> ModelMetadata:
    """Metadata for a model whose outputs are the taxonomy's classes in file order."""
    return ModelMetadata(
        name=name,
        arch=arch,
        version=version,
        taxonomy_version=taxonomy.version,
        input_size=input_size,
        interpolation=interpolation,  # type: ignore[arg-type]
        mean=mean,
        std=std,
        precision=precision,  # type: ignore[arg-type]
        classes=tuple(
            ModelClass(id=c.id, label=c.label, parent=c.parent) for c in taxonomy.classes
        ),
    )


def model_classes(metadata: ModelMetadata, taxonomy: Taxonomy) -> list[VehicleClass]:
    """The taxonomy's classes in the model's output order (checked with ``check_against``)."""
    known = taxonomy.by_id()
    return [known[c.id] for c in metadata.classes]
