"""A model file's calibration: temperature, thresholds and the certificate that backs them.

`recognize calibrate` (service/modeltools/calibrate.py) fits a temperature on a calibration
split and picks the match and mismatch thresholds so that the one-sided upper confidence bound
of the false-match rate (a ``match`` on a photo paired with another parent's VIN) is at most a
stated target. Model and thresholds are one artifact: the calibration is a second
``metadata_props`` entry of the ONNX file, key ``recognize.calibration``, beside the
``recognize`` entry of ``service/core/modelfile.py``.

Why a second entry and not a field of ``ModelMetadata``: an uncalibrated file (the demo model,
any export) stays byte-for-byte what the contract-1 exporter writes, so the ``recognize``
entry's contract version stays 1; the calibration entry carries its own ``format`` version.
A service that knows calibrations refuses a malformed or unknown-format entry (it never serves
with thresholds it cannot read); an older service ignores the entry and decides with its own
settings, as it always did, and does not claim a guarantee.

The decision rule a service applies is the calibration's unless a setting overrides a
threshold (``decision_rule``): an override is named in every response, and such a response is
not ``calibrated``, since the certificate speaks only of the calibrated thresholds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.core.errors import ModelContractError
from service.core.verdict import Thresholds

CALIBRATION_KEY = "recognize.calibration"
CALIBRATION_FORMAT = 1


class Certificate(BaseModel):
    """What the calibration split showed, and what is guaranteed from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(
        description="how the bounds were computed and the thresholds picked",
        examples=["clopper-pearson upper bound; fixed-sequence test, strict to lenient"],
    )
    confidence: float = Field(gt=0.0, lt=1.0, description="one-sided confidence of the bounds")
    target_false_match: float = Field(gt=0.0, lt=1.0)
    target_false_mismatch: float = Field(gt=0.0, lt=1.0)
    split: str = Field(description="the manifest split the pairs came from")
    n_photos: int = Field(ge=1)
    n_genuine_pairs: int = Field(ge=1, description="each photo with its own parent's VIN")
    n_impostor_pairs: int = Field(ge=1, description="each photo with every other parent's VIN")
    false_matches: int = Field(ge=0, description="`match` verdicts on impostor pairs")
    false_match_rate: float = Field(ge=0.0, le=1.0)
    false_match_bound: float = Field(
        ge=0.0, le=1.0, description="upper confidence bound of the false-match rate"
    )
    false_mismatches: int = Field(ge=0, description="`mismatch` verdicts on genuine pairs")
    false_mismatch_rate: float = Field(ge=0.0, le=1.0)
    false_mismatch_bound: float = Field(ge=0.0, le=1.0)
    automation_rate: float = Field(
        ge=0.0, le=1.0, description="share of genuine pairs matched automatically"
    )
    automation_by_parent: dict[str, float]
    manifest_sha256: str = Field(description="sha256 of the split manifest's entries")
    model_sha256: str = Field(description="sha256 of the ONNX graph the calibration belongs to")
    taxonomy_version: str
    created: str = Field(description="UTC time of the calibration, ISO 8601")


class Calibration(BaseModel):
    """The ``recognize.calibration`` metadata entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = CALIBRATION_FORMAT
    id: str = Field(
        default="", description="cal-<12 hex digits of sha256 of the rest of this entry>"
    )
    temperature: float = Field(gt=0.0, le=100.0)
    match_threshold: float = Field(gt=0.5, le=1.0)
    mismatch_threshold: float = Field(gt=0.5, le=1.0)
    certificate: Certificate

    @model_validator(mode="after")
    def _id_is_derived(self) -> Calibration:
        derived = self.derived_id()
        if not self.id:
            object.__setattr__(self, "id", derived)  # frozen model: set once, while validating
        elif self.id != derived:
            raise ValueError(
                f"calibration id {self.id!r} does not fit its contents ({derived!r}): the entry "
                "was edited after `recognize calibrate` wrote it"
            )
        return self

    def derived_id(self) -> str:
        body = self.model_dump(mode="json", exclude={"id"})
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return f"cal-{digest[:12]}"

    def to_json(self) -> str:
        return self.model_dump_json()

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(match=self.match_threshold, mismatch=self.mismatch_threshold)


def parse_calibration(
    custom_metadata: dict[str, str], *, source: str = "model"
) -> Calibration | None:
    """The calibration entry of an ONNX model's ``custom_metadata_map``; None if it has none.
    A malformed entry is a :class:`ModelContractError`, never silently ignored."""
    raw = custom_metadata.get(CALIBRATION_KEY)
    if raw is None:
        return None
    try:
        return Calibration.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ModelContractError(
            f"{source} has an invalid '{CALIBRATION_KEY}' metadata entry (re-run "
            f"`recognize calibrate`): {exc}"
        ) from exc


@dataclass(frozen=True)
class DecisionRule:
    """The temperature and thresholds a service decides with, and where they come from."""

    thresholds: Thresholds
    temperature: float
    calibration: Calibration | None
    overrides: tuple[str, ...]  # settings that replaced a calibrated (or default) threshold

    @property
    def calibrated(self) -> bool:
        """The decision is the certified one: a calibration, and no threshold overridden."""
        return self.calibration is not None and not self.overrides

    @property
    def calibration_id(self) -> str | None:
        return None if self.calibration is None else self.calibration.id


def decision_rule(
    calibration: Calibration | None,
    *,
    match_threshold: float | None = None,
    mismatch_threshold: float | None = None,
    vehicle_threshold: float = Thresholds.vehicle,
) -> DecisionRule:
    """The model's calibrated rule with the settings' overrides (None: not overridden); an
    uncalibrated model decides at temperature 1 with ``Thresholds()``'s defaults. The vehicle
    gate's threshold is the settings' (it belongs to the gate, not to the calibration)."""
    base = calibration.thresholds if calibration is not None else Thresholds()
    overrides = tuple(
        name
        for name, value in (
            ("match_threshold", match_threshold),
            ("mismatch_threshold", mismatch_threshold),
        )
        if value is not None
    )
    thresholds = Thresholds(
        match=base.match if match_threshold is None else match_threshold,
        mismatch=base.mismatch if mismatch_threshold is None else mismatch_threshold,
        vehicle=vehicle_threshold,
    )
    temperature = 1.0 if calibration is None else calibration.temperature
    return DecisionRule(thresholds, temperature, calibration, overrides)
