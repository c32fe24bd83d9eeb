"""The statistics of `recognize calibrate`, on data whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.taxonomy import VehicleClass
from service.core.verdict import Thresholds, Verdict, decide, softmax
from service.modeltools.calibrate import (
    THRESHOLD_GRID,
    CalibrationError,
    fit_temperature,
    fixed_sequence,
    pair_scores,
    pairs_needed,
    upper_bound,
)


def test_clopper_pearson_bounds_match_known_values() -> None:
    # Zero errors: 1 - alpha ** (1 / n) (the "rule of three" is its approximation 3 / n).
    assert upper_bound(0, 598, 0.95) == pytest.approx(1 - 0.05 ** (1 / 598))
    assert upper_bound(0, 598, 0.95) <= 0.005 < upper_bound(0, 597, 0.95)
    # Two errors in 1000, 95 % one-sided: 0.006281 (the beta quantile, e.g. R's binom.test).
    assert upper_bound(2, 1000, 0.95) == pytest.approx(0.006281, abs=2e-6)
    assert upper_bound(10, 10, 0.95) == 1.0
    assert pairs_needed(0.005, 0.95) == 598 and pairs_needed(0.01, 0.95) == 299


def test_fixed_sequence_stops_at_the_first_threshold_that_fails() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 5000) ** 8  # most impostors far below any threshold
    choice = fixed_sequence(scores, len(scores), 0.01, 0.95, "false matches")
    errors = (scores >= choice.threshold).sum()
    assert choice.errors == errors and choice.bound <= 0.01
    assert choice.bound == pytest.approx(upper_bound(errors, len(scores), 0.95))
    # The next grid step (more lenient) is the first whose bound exceeds the target.
    step = list(THRESHOLD_GRID).index(choice.threshold) + 1
    assert upper_bound((scores >= THRESHOLD_GRID[step]).sum(), len(scores), 0.95) > 0.01
    with pytest.raises(CalibrationError, match="even the strictest threshold"):
        fixed_sequence(np.ones(1000), 1000, 0.01, 0.95, "false matches")


def test_temperature_fit_recovers_the_temperature_that_made_the_labels() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (4000, 10))
    true_t = 2.5  # labels drawn from softmax(logits / 2.5): the model is overconfident by 2.5x
    probs = softmax(logits / true_t)
    labels = np.array([rng.choice(10, p=p) for p in probs])
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)


CLASSES = [
    VehicleClass(id="a1", label="A1", parent="A", body="x", years="-"),
    VehicleClass(id="a2", label="A2", parent="A", body="x", years="-", match_threshold=0.99),
    VehicleClass(id="b1", label="B1", parent="B", body="x", years="-"),
    VehicleClass(id="c1", label="C1", parent="C", body="x", years="-", enabled=False),
]


def test_pair_scores_reproduce_the_verdict_at_every_threshold() -> None:
    """The scan takes `decide` apart (overrides, disabled classes): at any threshold a pair is
    scored as a match exactly when the service's verdict says match."""
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, (300, len(CLASSES)))
    probs = softmax(logits)
    truth = [rng.choice(["A", "B", "C"]) for _ in range(300)]
    scores = pair_scores(probs, CLASSES, truth)
    for threshold in (0.55, 0.8, 0.95):
        for i in range(300):
            for j, parent in enumerate(scores.parents):
                verdict = decide(logits[i], CLASSES, expected_parent=parent,
                                 thresholds=Thresholds(threshold, 0.9)).verdict
                assert (verdict is Verdict.MATCH) == (scores.match_score[i, j] >= threshold)
