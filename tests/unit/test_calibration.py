"""The calibration metadata entry and the decision rule a service derives from it (pure)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.core.calibration import (
    CALIBRATION_KEY,
    Calibration,
    Certificate,
    decision_rule,
    parse_calibration,
)
from service.core.errors import ModelContractError
from service.core.taxonomy import VehicleClass
from service.core.verdict import Thresholds, Verdict, decide

CERTIFICATE = Certificate(
    method="clopper-pearson; fixed-sequence, strict to lenient",
    confidence=0.95,
    target_false_match=0.005,
    target_false_mismatch=0.01,
    split="val",
    n_photos=1000,
    n_genuine_pairs=1000,
    n_impostor_pairs=4000,
    false_matches=3,
    false_match_rate=0.00075,
    false_match_bound=0.0019,
    false_mismatches=2,
    false_mismatch_rate=0.002,
    false_mismatch_bound=0.0063,
    automation_rate=0.91,
    automation_by_parent={"tops": 0.85, "bag": 0.99},
    manifest_sha256="0" * 64,
    model_sha256="1" * 64,
    taxonomy_version="test-1",
    created="2026-12-02T00:00:00Z",
)


def calibration(**changes: object) -> Calibration:
    fields = {"temperature": 1.7, "match_threshold": 0.93, "mismatch_threshold": 0.97}
    return Calibration(certificate=CERTIFICATE, **{**fields, **changes})


def test_the_id_is_derived_from_the_contents_and_checked() -> None:
    cal = calibration()
    assert cal.id.startswith("cal-") and len(cal.id) == 16
    assert calibration().id == cal.id
    assert calibration(match_threshold=0.94).id != cal.id
    edited = json.loads(cal.to_json())
    edited["match_threshold"] = 0.6  # a hand edit of the file's thresholds
    with pytest.raises(ModelContractError, match="edited after"):
        parse_calibration({CALIBRATION_KEY: json.dumps(edited)})


def test_parse_reads_back_what_was_written_and_refuses_garbage() -> None:
    cal = calibration()
    assert parse_calibration({CALIBRATION_KEY: cal.to_json()}) == cal
    assert parse_calibration({}) is None
    with pytest.raises(ModelContractError, match=r"invalid 'recognize\.calibration'"):
        parse_calibration({CALIBRATION_KEY: "{not json"})
    future = {**json.loads(cal.to_json()), "format": 2}
    with pytest.raises(ModelContractError):
        parse_calibration({CALIBRATION_KEY: json.dumps(future)})


def test_rule_is_the_calibration_unless_a_setting_overrides_it() -> None:
    cal = calibration()
    rule = decision_rule(cal)
    assert rule.calibrated and rule.calibration_id == cal.id and not rule.overrides
    assert rule.thresholds == Thresholds(0.93, 0.97) and rule.temperature == 1.7

    overridden = decision_rule(cal, match_threshold=0.8)
    assert not overridden.calibrated and overridden.overrides == ("match_threshold",)
    assert overridden.thresholds == Thresholds(0.8, 0.97)
    assert overridden.calibration_id == cal.id  # still says whose temperature it uses

    plain = decision_rule(None)
    assert not plain.calibrated and plain.calibration_id is None
    assert plain.thresholds == Thresholds() and plain.temperature == 1.0
    assert decision_rule(None, mismatch_threshold=0.9).thresholds == Thresholds(0.8, 0.9)


CLASSES = [
    VehicleClass(id="a1", label="A1", parent="A", body="sedan", years="-"),
    VehicleClass(id="a2", label="A2", parent="A", body="estate", years="-"),
    VehicleClass(id="b1", label="B1", parent="B", body="suv", years="-"),
]


def test_temperature_divides_the_logits_before_the_softmax() -> None:
    logits = np.array([2.0, 1.0, 0.0])
    sharp = decide(logits, CLASSES, expected_parent="A", thresholds=Thresholds(0.85, 0.85))
    soft = decide(
        logits, CLASSES, expected_parent="A", thresholds=Thresholds(0.85, 0.85), temperature=3.0
    )
    z = np.exp(logits / 3.0)
    assert soft.parent_probability == pytest.approx((z[0] + z[1]) / z.sum())
    assert sharp.verdict is Verdict.MATCH and soft.verdict is Verdict.MANUAL_REVIEW
