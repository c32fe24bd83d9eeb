"""The verdict rule of the vehicle gate: a photo without a vehicle is never a match or a
mismatch, whatever the classifier says (service/core/verdict.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.reasons import Reason
from service.core.verdict import Thresholds, Verdict, decide
from tests.unit.test_verdict import CLASSES, logits_for

T = Thresholds(match=0.8, mismatch=0.8, vehicle=0.15)
SURE_C_CLASS = [0.97, 0.01, 0.01, 0.01, 0.0, 0.0, 0.0]  # a match for a C-Class VIN
SURE_E_CLASS = [0.01, 0.01, 0.0, 0.97, 0.01, 0.0, 0.0]  # a mismatch for a C-Class VIN
UNSURE = [0.2, 0.1, 0.1, 0.2, 0.1, 0.1, 0.2]


def run(probs: list[float], vehicle: float | None, expected: str | None = "C-Class", **kw):  # type: ignore[no-untyped-def]
    return decide(
        logits_for(probs),
        CLASSES,
        expected_parent=expected,
        thresholds=T,
        vehicle_probability=vehicle,
        **kw,
    )


@pytest.mark.parametrize(
    ("probs", "ungated"),
    [(SURE_C_CLASS, Verdict.MATCH), (SURE_E_CLASS, Verdict.MISMATCH)],
    ids=["would match", "would mismatch"],
)
def test_no_vehicle_overrides_a_match_and_a_mismatch(probs: list[float], ungated: Verdict) -> None:
    assert run(probs, None).verdict is ungated  # the classifier alone
    assert run(probs, 0.9).verdict is ungated  # a vehicle in the photo: the classifier decides
    gated = run(probs, 0.01)
    assert (gated.verdict, gated.reasons) == (Verdict.MANUAL_REVIEW, [Reason.NO_VEHICLE])
    # What the classifier saw is still reported.
    assert gated.top == run(probs, None).top
    assert gated.parent_match == run(probs, None).parent_match


def test_the_threshold_itself_passes() -> None:
    assert run(SURE_C_CLASS, 0.15).verdict is Verdict.MATCH
    assert run(SURE_C_CLASS, np.nextafter(0.15, 0)).verdict is Verdict.MANUAL_REVIEW


def test_other_review_reasons_follow_no_vehicle() -> None:
    assert run(UNSURE, 0.01).reasons == [Reason.NO_VEHICLE, Reason.LOW_CONFIDENCE]
    unknown = run(SURE_C_CLASS, 0.01, expected=None, vin_reasons=[Reason.UNKNOWN_MODEL_CODE])
    assert unknown.reasons == [Reason.NO_VEHICLE, Reason.UNKNOWN_MODEL_CODE]
    assert run(UNSURE, 0.9).reasons == [Reason.LOW_CONFIDENCE]


def test_a_zero_threshold_lets_every_photo_through() -> None:
    open_gate = Thresholds(match=0.8, mismatch=0.8, vehicle=0.0)
    decision = decide(
        logits_for(SURE_C_CLASS),
        CLASSES,
        expected_parent="C-Class",
        thresholds=open_gate,
        vehicle_probability=0.0,
    )
    assert decision.verdict is Verdict.MATCH


@given(
    probs=st.lists(st.floats(0.0, 1.0), min_size=len(CLASSES), max_size=len(CLASSES)).filter(
        lambda p: sum(p) > 1e-6
    ),
    vehicle=st.floats(0.0, 0.15, exclude_max=True),
    expected=st.sampled_from(["C-Class", "E-Class", "AMG GT", "GLE-Class", "G-Class", None]),
)
def test_a_gated_photo_is_never_a_match_or_a_mismatch(
    probs: list[float], vehicle: float, expected: str | None
) -> None:
    total = sum(probs)
    decision = run([p / total for p in probs], vehicle, expected=expected)
    assert decision.verdict is Verdict.MANUAL_REVIEW
    assert decision.reasons[0] is Reason.NO_VEHICLE
