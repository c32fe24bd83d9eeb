"""`recognize calibrate`: a temperature and thresholds with a stated false-match bound.

A false match is the fraud that passes: a photo of one car judged ``match`` against the VIN of
another (thesis 6.6: a wrong match costs more than a manual review). On the calibration split
(by default ``val``; never the test split) this

1. fits a temperature T to the model's logits by minimising the negative log-likelihood
   (temperature scaling, Guo et al. 2017, https://arxiv.org/abs/1706.04599), so the parent
   probabilities the thresholds act on are calibrated;
2. forms pairs: each photo with its own parent's VIN (genuine) and with every other parent's
   VIN (impostor), judged by the service's verdict (``service.core.verdict.decide``, at T);
3. picks the match threshold by fixed-sequence testing from strict to lenient on a grid fixed in
   advance (Learn-then-Test, Angelopoulos et al. 2021, https://arxiv.org/abs/2110.01052): at
   each threshold the null hypothesis "false-match rate > target" is rejected when the one-sided
   Clopper-Pearson upper bound of the rate (``scipy.stats.beta.ppf``) is at most the target, and
   the search stops at the first threshold that is not rejected. The most lenient rejected
   threshold is chosen; with probability at least the confidence, the false-match rate at it is
   at most the target. The mismatch threshold likewise bounds false mismatches (``mismatch`` on
   a genuine pair) at the chosen match threshold.

Thresholds stay above 0.5, so at most one parent of a photo can pass: a photo's impostor pairs
are negatively associated, which keeps the binomial bound conservative. The pairs use the split's
photos as they come; the bound holds for photos and frauds drawn like them.

Too few impostor pairs for the target (with none false, ``ln(1 - confidence) / ln(1 - target)``
are needed: 598 for 0.5 % at 95 %) or no threshold passing: it says so, exits 1 and certifies
nothing. Otherwise it writes the model with a ``recognize.calibration`` metadata entry
(``service/core/calibration.py``), a JSON report and a risk-coverage plot beside it.

    recognize calibrate runs/lite0/model.onnx --data runs/lite0/manifest.json \\
        --target-false-match 0.005 --confidence 0.95 --out runs/lite0/model.calibrated.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service.core.calibration import CALIBRATION_KEY, Calibration, Certificate
from service.core.taxonomy import VehicleClass
from service.core.verdict import (
    Thresholds,
    Verdict,
    _match_threshold,
    decide,
    parent_probabilities,
    softmax,
)
from service.modeltools._cli import run_step
from service.modeltools.dataset import DataError, Manifest, load_data
from service.modeltools.evaluate import labelled_split, predict_logits

METHOD = (
    "temperature scaling (NLL); one-sided Clopper-Pearson upper bounds; fixed-sequence test "
    "from strict to lenient thresholds on a fixed grid (learn-then-test)"
)
# Fixed before any data is seen (fixed-sequence testing needs its order in advance): steps of
# 0.001 from 0.51 to 0.999, then ever closer to 1 for models that are sure of most photos.
THRESHOLD_GRID = np.unique(
    np.concatenate([np.round(np.arange(0.51, 0.9995, 0.001), 3), 1 - np.logspace(-3.05, -7, 80)])
)[::-1]


class CalibrationError(Exception):
    """Nothing can be certified; the message says why (and what would be needed)."""


def upper_bound(errors: int | np.ndarray, n: int, confidence: float) -> Any:
    """One-sided Clopper-Pearson upper confidence bound of a binomial rate."""
    from scipy.stats import beta

    errors = np.asarray(errors)
    bound = beta.ppf(confidence, errors + 1, np.maximum(n - errors, 1))
    return np.where(errors >= n, 1.0, bound)


def pairs_needed(target: float, confidence: float) -> int:
    """Pairs with no error at all needed for the bound to reach ``target``."""
    return math.ceil(math.log(1 - confidence) / math.log(1 - target))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the mean negative log-likelihood of softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)

    def nll(log_t: float) -> float:
        scaled = z / math.exp(log_t)
        scaled = scaled - scaled.max(1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(1))
        return float((log_norm - scaled[np.arange(len(labels)), labels]).mean())

    found = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(found.x))


@dataclass(frozen=True)
class PairScores:
    """Per pair, the smallest threshold at which the service's verdict would be ``match``, and
    per genuine pair the strongest other parent's (trusted) probability."""

    match_score: np.ndarray  # [photos, parents]; +inf / -inf where a class override decides
    other_score: np.ndarray  # [photos]: max trusted mass of a parent other than the true one
    genuine: np.ndarray  # [photos, parents] bool
    parents: list[str]


def pair_scores(
    probs: np.ndarray, classes: list[VehicleClass], true_parent: list[str]
) -> PairScores:
    """The verdict's match test (``decide``), taken apart so thresholds can be scanned."""
    parents = list(dict.fromkeys(c.parent for c in classes))
    match = np.empty((len(probs), len(parents)))
    other = np.empty(len(probs))
    for i, p in enumerate(probs):
        trusted = parent_probabilities(p, classes, enabled_only=True)
        for j, parent in enumerate(parents):
            override = _match_threshold(p, classes, parent, math.nan)
            if math.isnan(override):
                match[i, j] = trusted[parent]
            else:  # a per-class threshold of the taxonomy decides, whatever the global one
                match[i, j] = math.inf if trusted[parent] >= override else -math.inf
        other[i] = max((m for q, m in trusted.items() if q != true_parent[i]), default=0.0)
    genuine = np.array([[q == t for q in parents] for t in true_parent], dtype=bool)
    return PairScores(match, other, genuine, parents)


@dataclass(frozen=True)
class Choice:
    threshold: float
    errors: int
    bound: float
    table: list[dict[str, float]]


def fixed_sequence(scores: np.ndarray, n: int, target: float, confidence: float,
                   what: str) -> Choice:
    """The most lenient grid threshold reached before the first one whose bound exceeds the
    target; an error, as a rate of ``n`` pairs, is a score at or above the threshold."""
    errors = (scores[None, :] >= THRESHOLD_GRID[:, None]).sum(1)
    bounds = upper_bound(errors, n, confidence)
    passed = bounds <= target
    if not passed[0]:
        raise CalibrationError(
            f"even the strictest threshold {THRESHOLD_GRID[0]:.7f} gives {int(errors[0])} {what} "
            f"of {n} pairs, an upper bound of {bounds[0]:.4f} > target {target}: nothing can "
            "be certified (a better model or more calibration photos are needed)"
        )
    last = int(np.argmin(passed)) - 1 if not passed.all() else len(passed) - 1
    table = [{"threshold": float(t), "errors": int(e), "bound": float(b)}
             for t, e, b in zip(THRESHOLD_GRID, errors, bounds, strict=True)]
    return Choice(float(THRESHOLD_GRID[last]), int(errors[last]), float(bounds[last]), table)


@dataclass(frozen=True)
class Certified:
    """What the statistics chose on a set of calibration photos."""

    temperature: float
    match: Choice
    mismatch: Choice
    scores: PairScores

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(match=self.match.threshold, mismatch=self.mismatch.threshold)


def certify(logits: np.ndarray, labels: np.ndarray, classes: list[VehicleClass], *,
            target_false_match: float, target_false_mismatch: float,
            confidence: float) -> Certified:
    """Temperature, then the match threshold on the impostor pairs, then the mismatch
    threshold on the genuine pairs at that match threshold."""
    temperature = fit_temperature(logits, labels)
    probs = softmax(np.asarray(logits, dtype=np.float64) / temperature)
    scores = pair_scores(probs, classes, [classes[i].parent for i in labels])
    impostor = scores.match_score[~scores.genuine]
    match = fixed_sequence(impostor, len(impostor), target_false_match, confidence,
                           "false matches")
    matched = scores.match_score[scores.genuine] >= match.threshold
    mismatch_scores = np.where(matched, -np.inf, scores.other_score)
    mismatch = fixed_sequence(mismatch_scores, len(labels), target_false_mismatch, confidence,
                              "false mismatches")
    return Certified(temperature, match, mismatch, scores)


def graph_sha256(model: Path) -> str:
    """sha256 of the ONNX graph (weights and nodes; not the metadata)."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return hashlib.sha256(proto.graph.SerializeToString(deterministic=True)).hexdigest()


def write_calibrated(model: Path, out: Path, calibration: Calibration) -> None:
    """Copy ``model`` to ``out`` with the calibration entry (replacing an earlier one)."""
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    kept = [p for p in proto.metadata_props if p.key != CALIBRATION_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=CALIBRATION_KEY, value=calibration.to_json())
    out.parent.mkdir(parents=True, exist_ok=True)
    external = model.with_name(f"{model.name}.data")
    if external.exists() and out.parent.resolve() != model.parent.resolve():
        shutil.copy(external, out.parent / external.name)  # the graph names it by this name
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx", delete=False) as handle:
        handle.write(proto.SerializeToString())
    os.replace(handle.name, out)


def calibrate(model: Path | str, manifest: Manifest, *, out: Path | str, split: str = "val",
              taxonomy_path: Path | str | None = None, target_false_match: float = 0.005,
              target_false_mismatch: float = 0.01, confidence: float = 0.95,
              report_dir: Path | str | None = None) -> dict[str, Any]:
    """Fit, certify and write the calibrated model; raise :class:`CalibrationError` when the
    split cannot back the targets."""
    model, out = Path(model), Path(out)
    if split == "test":
        raise CalibrationError("calibrate on val (or another held-out split), never on test")
    predictor, entries, labels = labelled_split(model, manifest, split, taxonomy_path)
    classes = predictor.classes
    true_parent = [classes[i].parent for i in labels]
    parents = list(dict.fromkeys(c.parent for c in classes))
    n_photos = len(entries)
    n_genuine, n_impostor = n_photos, n_photos * (len(parents) - 1)
    for what, n, target in (("impostor", n_impostor, target_false_match),
                            ("genuine", n_genuine, target_false_mismatch)):
        needed = pairs_needed(target, confidence)
        if n < needed:
            raise CalibrationError(
                f"too few {what} pairs for a {target:g} bound at {confidence:.0%} confidence: "
                f"the {split} split gives {n} ({n_photos} photos x "
                f"{len(parents) - 1 if what == 'impostor' else 1}), at least {needed} with no "
                "error at all are needed; nothing was certified"
            )

    logits = predict_logits(predictor, [manifest.path_of(e) for e in entries])
    found = certify(logits, labels, classes, target_false_match=target_false_match,
                    target_false_mismatch=target_false_mismatch, confidence=confidence)
    temperature, match, mismatch = found.temperature, found.match, found.mismatch
    thresholds = found.thresholds

    # The same pairs through the service's verdict itself: the scan above must agree with it.
    verdicts = [[decide(logits[i], classes, expected_parent=q, thresholds=thresholds,
                        temperature=temperature).verdict for q in parents]
                for i in range(n_photos)]
    genuine_verdicts = [v[parents.index(true_parent[i])] for i, v in enumerate(verdicts)]
    false_matches = sum(v is Verdict.MATCH for i, row in enumerate(verdicts)
                        for q, v in zip(parents, row, strict=True) if q != true_parent[i])
    false_mismatches = sum(v is Verdict.MISMATCH for v in genuine_verdicts)
    if (false_matches, false_mismatches) != (match.errors, mismatch.errors):
        raise RuntimeError(
            f"the threshold scan ({match.errors}, {mismatch.errors}) and the verdict "
            f"({false_matches}, {false_mismatches}) disagree on the calibration pairs"
        )
    automated = np.array([v is Verdict.MATCH for v in genuine_verdicts])
    by_parent = {
        q: float(automated[[t == q for t in true_parent]].mean())
        for q in parents if q in true_parent
    }
    certificate = Certificate(
        method=METHOD,
        confidence=confidence,
        target_false_match=target_false_match,
        target_false_mismatch=target_false_mismatch,
        split=split,
        n_photos=n_photos,
        n_genuine_pairs=n_genuine,
        n_impostor_pairs=n_impostor,
        false_matches=false_matches,
        false_match_rate=false_matches / n_impostor,
        false_match_bound=match.bound,
        false_mismatches=false_mismatches,
        false_mismatch_rate=false_mismatches / n_genuine,
        false_mismatch_bound=mismatch.bound,
        automation_rate=float(automated.mean()),
        automation_by_parent=by_parent,
        manifest_sha256=manifest.sha256,
        model_sha256=graph_sha256(model),
        taxonomy_version=predictor.metadata.taxonomy_version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    calibration = Calibration(
        temperature=temperature,
        match_threshold=match.threshold,
        mismatch_threshold=mismatch.threshold,
        certificate=certificate,
    )
    write_calibrated(model, out, calibration)
    report = {"model": str(out), "source_model": str(model),
              **calibration.model_dump(mode="json"),
              "match_scan": match.table, "mismatch_scan": mismatch.table}
    folder = Path(report_dir) if report_dir else out.with_name(f"{out.stem}.calibration")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calibration.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_risk_coverage(folder / "risk_coverage.png", found.scores, match, target_false_match)
    return calibration.model_dump(mode="json")


def plot_risk_coverage(path: Path, scores: PairScores, match: Choice, target: float) -> None:
    """False-match rate (observed and its bound) against automation, over the grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genuine = scores.match_score[scores.genuine]
    coverage = [(genuine >= r["threshold"]).mean() for r in match.table]
    n_imp = int((~scores.genuine).sum())
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(coverage, [r["errors"] / n_imp for r in match.table], label="observed false-match rate")
    ax.plot(coverage, [r["bound"] for r in match.table], label="upper confidence bound")
    ax.axhline(target, color="grey", linestyle="--", label=f"target {target:g}")
    chosen = float((genuine >= match.threshold).mean())
    ax.scatter([chosen], [match.bound], color="red", zorder=3,
               label=f"chosen: match >= {match.threshold:.4f}")
    ax.set_xlabel("automation rate (genuine pairs matched)")
    ax.set_ylabel("false-match rate (impostor pairs)")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_title("risk-coverage on the calibration split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recognize calibrate",
        description="Fit a temperature and pick match / mismatch thresholds whose false-match "
        "and false-mismatch rates have a stated upper confidence bound; write them, with the "
        "certificate, into a copy of the model file.",
    )
    p.add_argument("model", type=Path, help="the ONNX model file (`recognize train`/`export`)")
    p.add_argument("--data", type=Path, required=True,
                   help="split manifest (from `recognize train`), or an image folder / CSV")
    p.add_argument("--split", default="val", help="calibration split (default val; never test)")
    p.add_argument("--taxonomy", type=Path, help="taxonomy of the model (default: Mercedes-Benz)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a new split (default 0)")
    p.add_argument("--target-false-match", type=float, default=0.005,
                   help="bound on the false-match rate (default 0.005)")
    p.add_argument("--target-false-mismatch", type=float, default=0.01,
                   help="bound on the false-mismatch rate (default 0.01)")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="one-sided confidence of the bounds (default 0.95)")
    p.add_argument("--out", type=Path, required=True, help="calibrated ONNX file to write")
    p.add_argument("--report-dir", type=Path,
                   help="report folder (default: <out stem>.calibration beside --out)")
    return p


def main(argv: list[str] | None = None) -> int:
    from service.core.errors import ModelContractError
    from service.core.taxonomy import load_taxonomy

    args = build_parser().parse_args(argv)
    for name in ("target_false_match", "target_false_mismatch", "confidence"):
        if not 0 < getattr(args, name) < 1:
            print(f"recognize calibrate: error: --{name.replace('_', '-')} must be in (0, 1)",
                  file=sys.stderr)
            return 2

    def step() -> dict[str, Any]:
        manifest = load_data(args.data, load_taxonomy(args.taxonomy), seed=args.split_seed)
        return calibrate(
            args.model, manifest, out=args.out, split=args.split, taxonomy_path=args.taxonomy,
            target_false_match=args.target_false_match,
            target_false_mismatch=args.target_false_mismatch, confidence=args.confidence,
            report_dir=args.report_dir,
        )

    return run_step("recognize calibrate", step, (CalibrationError, DataError, ModelContractError))


if __name__ == "__main__":
    raise SystemExit(main())
