"""Verdict logic: parent aggregation, thresholds, disabled classes, unknowns."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.taxonomy import VehicleClass, default_taxonomy
from service.core.verdict import Thresholds, decide, parent_probabilities, softmax


def ClassInfo(
    id: str, label: str, parent: str, **switches: object
) -> VehicleClass:
    return VehicleClass(id=id, label=label, parent=parent, body="sedan", years="2000-", **switches)


CLASSES = [
    ClassInfo("c_sedan", "C-Class Sedan", "C-Class"),
    ClassInfo("c_estate", "C-Class Estate", "C-Class"),
    ClassInfo("c_coupe", "C-Class Coupe", "C-Class"),
    ClassInfo("e_sedan", "E-Class Sedan", "E-Class"),
    ClassInfo("amg_gt", "AMG GT Coupe", "AMG GT", match_threshold=0.95),
    ClassInfo("gle_coupe_old", "GLE Coupe old", "GLE-Class", enabled=False),
    ClassInfo("gle_suv", "GLE SUV", "GLE-Class"),
]
T = Thresholds(match=0.8, mismatch=0.8)


def logits_for(probs: list[float]) -> np.ndarray:
    """Logits whose softmax is exactly `probs` (zeros become a negligible epsilon)."""
    p = np.asarray(probs, dtype=np.float64)
    return np.log(np.clip(p, 1e-12, None)).astype(np.float32)


def run(probs: list[float], expected: str | None, reasons: tuple[str, ...] = ()):
    return decide(
        logits_for(probs),
        CLASSES,
        expected_parent=expected,
        vin_reasons=reasons,
        thresholds=T,
        top_k=3,
    )


def test_softmax_is_stable_and_normalised() -> None:
    p = softmax(np.array([1000.0, 1000.0, -1000.0]))
    assert np.isfinite(p).all()
    assert p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(0.5)


def test_parent_probabilities_sum_classes() -> None:
    masses = parent_probabilities(np.array([0.2, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1]), CLASSES)
    assert masses["C-Class"] == pytest.approx(0.6)
    assert masses["GLE-Class"] == pytest.approx(0.2)
    assert sum(masses.values()) == pytest.approx(1.0)


# (probabilities over CLASSES, expected parent, verdict, reasons, parent_match)
TABLE = [
    # Wrong body style, right parent: the parent mass decides -> match (thesis 5.2).
    ([0.30, 0.30, 0.25, 0.15, 0, 0, 0], "C-Class", "match", [], True),
    # Top class is an E-Class but the C-Class parent holds 0.85 -> still a match.
    ([0.28, 0.28, 0.29, 0.15, 0, 0, 0], "C-Class", "match", [], True),
    # Just under the threshold -> manual review, low confidence.
    ([0.40, 0.39, 0.0, 0.21, 0, 0, 0], "C-Class", "manual_review", ["low_confidence"], True),
    # Another parent clearly wins -> mismatch.
    ([0.05, 0.05, 0.0, 0.90, 0, 0, 0], "C-Class", "mismatch", ["parent_mismatch"], False),
    # Neither side is clear -> manual review.
    ([0.30, 0.10, 0.0, 0.60, 0, 0, 0], "C-Class", "manual_review", ["low_confidence"], False),
    # Per-class override: AMG GT needs 0.95.
    ([0.0, 0.0, 0.0, 0.08, 0.92, 0, 0], "AMG GT", "manual_review", ["low_confidence"], True),
    ([0.0, 0.0, 0.0, 0.03, 0.97, 0, 0], "AMG GT", "match", [], True),
    # Evidence only from a disabled class never yields a match...
    ([0.0, 0.0, 0.0, 0.05, 0, 0.90, 0.05], "GLE-Class", "manual_review", ["class_disabled"], True),
    # ...nor a mismatch.
    ([0.05, 0.0, 0.0, 0.0, 0, 0.95, 0.0], "C-Class", "manual_review", ["class_disabled"], False),
    # Enabled classes of the parent carry it alone -> match.
    ([0.0, 0.0, 0.0, 0.05, 0, 0.10, 0.85], "GLE-Class", "match", [], True),
]


@pytest.mark.parametrize(("probs", "expected", "verdict", "reasons", "parent_match"), TABLE)
def test_verdict_table(probs, expected, verdict, reasons, parent_match) -> None:
    d = run(probs, expected)
    assert d.verdict.value == verdict
    assert d.reasons == reasons
    assert d.parent_match is parent_match
    mass = sum(p for p, c in zip(probs, CLASSES, strict=True) if c.parent == expected)
    assert d.parent_probability == pytest.approx(mass, abs=1e-6)


def test_parent_match_weighs_parents_not_the_top_class() -> None:
    # The top single class is an E-Class, but the C-Class's three body styles together carry
    # more: the most probable parent is the C-Class, as the verdict weighs it.
    d = run([0.20, 0.20, 0.20, 0.40, 0, 0, 0], "C-Class")
    assert d.top.parent == "E-Class"
    assert d.parent_match is True
    assert (d.verdict.value, d.reasons) == ("manual_review", ["low_confidence"])
    assert d.parent_probability == pytest.approx(0.60, abs=1e-6)
    assert run([0.20, 0.20, 0.20, 0.40, 0, 0, 0], "E-Class").parent_match is False


def test_no_expected_parent_is_manual_review_with_vin_reasons() -> None:
    d = run([0.99, 0.01, 0, 0, 0, 0, 0], None, ("vin_not_mercedes",))
    assert (d.verdict.value, d.reasons, d.parent_match) == (
        "manual_review",
        ["vin_not_mercedes"],
        None,
    )
    assert d.parent_probability == pytest.approx(1.0, abs=1e-6)  # the predicted parent's mass


def test_unknown_model_code_is_the_default_reason() -> None:
    assert run([0.99, 0.01, 0, 0, 0, 0, 0], None).reasons == ["unknown_model_code"]


NEW_VIN_REASONS = ("generation_not_supported", "model_line_ambiguous")


@pytest.mark.parametrize("reason", NEW_VIN_REASONS)
@pytest.mark.parametrize(
    "probs",
    [
        [0.99, 0.01, 0, 0, 0, 0, 0],  # the photo clearly shows a C-Class
        [0.0, 0.0, 0.0, 0.99, 0.01, 0, 0],  # ... clearly an E-Class
        [0.2, 0.2, 0.2, 0.2, 0.1, 0.0, 0.1],  # ... nothing clearly
    ],
)
def test_a_vin_of_a_known_series_without_a_class_is_manual_review(probs, reason) -> None:
    d = run(probs, None, (reason,))
    assert (d.verdict.value, d.reasons, d.parent_match) == ("manual_review", [reason], None)


@pytest.mark.parametrize("reason", NEW_VIN_REASONS)
def test_a_no_parent_vin_reason_wins_over_a_parent_passed_with_it(reason) -> None:
    # A caller that passes a parent along with the decoder's "no parent" reason still gets
    # manual review: the C-Class evidence is clear and would otherwise match or mismatch.
    for expected in ("C-Class", "E-Class"):
        d = run([0.99, 0.01, 0, 0, 0, 0, 0], expected, (reason,))
        assert (d.verdict.value, d.reasons, d.parent_match) == ("manual_review", [reason], None)


def test_real_vins_of_the_new_reasons_are_manual_review_against_the_real_taxonomy() -> None:
    from service.core.vin import decode_vin

    tax = default_taxonomy()
    e_class = next(i for i, c in enumerate(tax.classes) if c.parent == "E-Class")
    v_class = next(i for i, c in enumerate(tax.classes) if c.parent == "V-Class")
    for vin, reason, shown in (
        ("WDB1240301A123456", "generation_not_supported", e_class),  # an E-Class W124
        ("W1V4476031P123456", "model_line_ambiguous", v_class),  # V-Class or Vito W447
    ):
        decoded = decode_vin(vin)
        logits = np.full(len(tax.classes), -10.0, dtype=np.float32)
        logits[shown] = 10.0  # the photo shows the series' line beyond doubt
        d = decide(
            logits,
            tax.classes,
            expected_parent=decoded.expected_parent,
            vin_reasons=decoded.reasons,
        )
        assert (decoded.expected_parent, d.verdict.value, d.reasons) == (
            None,
            "manual_review",
            [reason],
        )


def test_parent_the_model_does_not_know_is_manual_review() -> None:
    d = run([0.99, 0.01, 0, 0, 0, 0, 0], "X-Class")
    assert (d.verdict.value, d.reasons, d.parent_match) == (
        "manual_review",
        ["parent_not_supported"],
        None,
    )


def test_top_k_is_sorted_and_sized() -> None:
    d = decide(
        logits_for([0.1, 0.5, 0.2, 0.2, 0, 0, 0]),
        CLASSES,
        expected_parent="C-Class",
        thresholds=T,
        top_k=4,
    )
    probs = [s.probability for s in d.top_k]
    assert len(d.top_k) == 4 and probs == sorted(probs, reverse=True)
    assert d.top.class_id == "c_estate" and d.top_k[0].class_id == "c_estate"


def test_match_is_never_given_below_the_global_threshold_without_override() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        logits = rng.normal(0, 3, size=len(CLASSES)).astype(np.float32)
        for parent in ("C-Class", "E-Class", "GLE-Class"):
            d = decide(logits, CLASSES, expected_parent=parent, thresholds=T)
            if d.verdict.value == "match":
                assert d.parent_probability >= T.match
            if d.verdict.value == "mismatch":
                assert d.parent_probability <= 1 - T.mismatch + 1e-9


def test_real_taxonomy_thresholds_load() -> None:
    tax = default_taxonomy()
    assert len(tax.classes) == 64
    assert any(not c.enabled for c in tax.classes)
    assert any(c.match_threshold for c in tax.classes)
