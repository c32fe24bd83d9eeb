"""Logits → prediction → verdict. Pure numpy; knows nothing of Ray, HTTP or images.

The thesis cited is Grundmann, "Comparing Vision Transformers to Traditional Deep Learning Object
Classification Architectures for Automotive Make and Model Recognition" (master's thesis, 2023).

The decision is made on parent classes (thesis 4.2.2, 5.2: 70-75% of errors only miss the body
style or generation, so a wrong body within the right parent is still a match). Precision beats
recall (thesis 6.6): anything short of clear evidence goes to manual review.

- ``match``: the VIN's parent carries at least the match threshold (the per-class override of
  that parent's most probable class, if it has one, else the global threshold).
- ``mismatch``: another parent carries at least the mismatch threshold.
- ``manual_review``: everything else, and every unknown (no parent from the VIN, a parent the
  model does not know). Disabled classes never count as evidence for either decision. A VIN
  reason that says the VIN names no parent to check (an unknown code, a generation without a
  class) forces manual review even if a caller passed a parent along with it.

The vehicle gate (``service.core.gate``) overrides both: a photo whose vehicle probability is
below the vehicle threshold is ``manual_review`` with reason ``no_vehicle``, whatever the
classifier says, because a closed-set classifier names a car even for a photo of a document
(thesis 1.3, 5.5). Its other review reasons (an unknown VIN, low confidence) follow; a match or
mismatch it would have been leaves none. ``prediction`` and ``parent_match`` still describe what
the classifier saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service.core.reasons import Reason
from service.core.taxonomy import VehicleClass


class Verdict(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    MANUAL_REVIEW = "manual_review"


# The VIN decoder's reasons for naming no parent (service.core.vin): with any of them there is
# nothing the photo could match, whatever ``expected_parent`` says.
NO_PARENT_REASONS = frozenset(
    {
        Reason.UNKNOWN_MODEL_CODE,
        Reason.VIN_NOT_MERCEDES,
        Reason.GENERATION_NOT_SUPPORTED,
        Reason.MODEL_LINE_AMBIGUOUS,
    }
)


@dataclass(frozen=True)
class Thresholds:
    match: float = 0.80
    mismatch: float = 0.80
    # The vehicle gate's: see Settings.vehicle_threshold for how 0.15 was chosen.
    vehicle: float = 0.15

    def vehicle_present(self, vehicle_probability: float) -> bool:
        """The gate's rule: a vehicle is in the photo at the threshold or above."""
        return vehicle_probability >= self.vehicle


class ScoredClass(BaseModel):
    """One class of the model with the probability the photo gave it."""

    model_config = ConfigDict(frozen=True)

    class_id: str
    label: str
    parent: str
    probability: float = Field(ge=0.0, le=1.0)


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: list[Reason]
    parent_match: bool | None
    top: ScoredClass
    # Summed over a parent's classes, clamped: float64 sums of probabilities can exceed 1.0 by
    # an ulp, and a probability above 1 is no probability.
    parent_probability: float
    top_k: list[ScoredClass] = field(default_factory=list)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def parent_probabilities(
    probs: np.ndarray, classes: Sequence[VehicleClass], *, enabled_only: bool = False
) -> dict[str, float]:
    """Probability mass of each parent: the sum of its classes' probabilities."""
    masses: dict[str, float] = {}
    for p, cls in zip(probs, classes, strict=True):
        if enabled_only and not cls.enabled:
            p = 0.0
        masses[cls.parent] = masses.get(cls.parent, 0.0) + float(p)
    return masses


def _scored(probs: np.ndarray, classes: Sequence[VehicleClass], index: int) -> ScoredClass:
    cls = classes[index]
    return ScoredClass(
        class_id=cls.id, label=cls.label, parent=cls.parent, probability=float(probs[index])
    )


def decide(
    logits: np.ndarray,
    classes: Sequence[VehicleClass],
    *,
    expected_parent: str | None,
    vin_reasons: Sequence[Reason] = (),
    thresholds: Thresholds = Thresholds(),
    top_k: int = 3,
    vehicle_probability: float | None = None,
    temperature: float = 1.0,
) -> Decision:
    """The verdict for one photo's logits against the parent class its VIN names.

    ``vehicle_probability`` is the gate's (None: no gate ran). ``temperature``: the model
    file's calibrated temperature (service/core/calibration.py); the logits are divided by it
    before the softmax, so the probabilities and thresholds are the ones `recognize calibrate`
    certified. 1.0 for an uncalibrated model.
    """
    decision = _decide_on_classes(
        logits,
        classes,
        expected_parent=expected_parent,
        vin_reasons=vin_reasons,
        thresholds=thresholds,
        top_k=top_k,
        temperature=temperature,
    )
    if vehicle_probability is None or thresholds.vehicle_present(vehicle_probability):
        return decision
    still_true = decision.reasons if decision.verdict is Verdict.MANUAL_REVIEW else []
    return replace(
        decision, verdict=Verdict.MANUAL_REVIEW, reasons=[Reason.NO_VEHICLE, *still_true]
    )


def _decide_on_classes(
    logits: np.ndarray,
    classes: Sequence[VehicleClass],
    *,
    expected_parent: str | None,
    vin_reasons: Sequence[Reason],
    thresholds: Thresholds,
    top_k: int,
    temperature: float,
) -> Decision:
    probs = softmax(np.asarray(logits, dtype=np.float64) / temperature)
    order = np.argsort(-probs, kind="stable")
    top = _scored(probs, classes, int(order[0]))
    ranked = [_scored(probs, classes, int(i)) for i in order[: max(1, top_k)]]
    masses = parent_probabilities(probs, classes)

    def review(reasons: list[Reason], parent_probability: float) -> Decision:
        return Decision(
            Verdict.MANUAL_REVIEW, reasons, None, top, min(1.0, parent_probability), ranked
        )

    if expected_parent is None or NO_PARENT_REASONS.intersection(vin_reasons):
        return review(list(vin_reasons) or [Reason.UNKNOWN_MODEL_CODE], masses[top.parent])
    if expected_parent not in masses:
        return review([Reason.PARENT_NOT_SUPPORTED], masses[top.parent])

    predicted_parent = max(masses, key=masses.__getitem__)
    parent_match = predicted_parent == expected_parent
    trusted = parent_probabilities(probs, classes, enabled_only=True)
    best_other = max((m for p, m in trusted.items() if p != expected_parent), default=0.0)
    best_other_any = max((m for p, m in masses.items() if p != expected_parent), default=0.0)
    threshold = _match_threshold(probs, classes, expected_parent, thresholds.match)

    if trusted[expected_parent] >= threshold:
        verdict, reasons = Verdict.MATCH, []
    elif best_other >= thresholds.mismatch:
        verdict, reasons = Verdict.MISMATCH, [Reason.PARENT_MISMATCH]
    else:
        verdict = Verdict.MANUAL_REVIEW
        untrusted_evidence = (
            masses[expected_parent] >= threshold or best_other_any >= thresholds.mismatch
        )
        reasons = [Reason.CLASS_DISABLED if untrusted_evidence else Reason.LOW_CONFIDENCE]
    return Decision(
        verdict, reasons, parent_match, top, min(1.0, masses[expected_parent]), ranked
    )


def _match_threshold(
    probs: np.ndarray, classes: Sequence[VehicleClass], parent: str, default: float
) -> float:
    """The override of the parent's most probable class, where it has one."""
    members = [i for i, c in enumerate(classes) if c.parent == parent]
    best = max(members, key=lambda i: probs[i])
    override = classes[best].match_threshold
    return default if override is None else override
