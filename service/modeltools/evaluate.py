"""`recognize evaluate`: a model file's metrics on one split, as the service would judge it.

The photos go through the service's own code, not a separate torch path: decode and squash
(``service.core.imaging``), onnxruntime with the service's session options and the verdict
with the model file's calibration (``service.inference.predictor.Predictor``). The metrics are
the thesis' (Grundmann 2023, sections 2.4, 5.1-5.2), computed with scikit-learn: accuracy,
macro precision / recall / F1, MCC, top-3 accuracy, the per-class table sorted by precision
(its Table 5.4), and parent accuracy with the share of errors that stay inside the right parent
(section 5.2 found 70-75 %), plus the expected calibration error (ECE, 15 equal-width bins of
the top-class confidence; Guo et al. 2017, https://arxiv.org/abs/1706.04599).

The verdict figures come from pairs: each photo with its own parent's VIN (genuine) and with
every other parent's VIN (impostor, the fraud case). ``false_match_rate`` is the share of
impostor pairs judged ``match``; ``false_mismatch_rate`` the share of genuine pairs judged
``mismatch``; ``automation_rate`` the share of genuine pairs matched without a reviewer.

Writes to ``--out``: ``metrics.json``, ``predictions.csv``, ``pairs.csv``, ``per_class.csv``,
``confusion_classes.png``, ``confusion_parents.png``, ``reliability.png`` and ``report.md``.

    recognize evaluate runs/lite0/model.onnx --data runs/lite0/manifest.json --split test \\
        --out runs/lite0/eval-test
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.core.taxonomy import VehicleClass
from service.core.verdict import Verdict, softmax
from service.inference.predictor import Predictor
from service.modeltools._cli import run_step
from service.modeltools.dataset import DataError, Entry, Manifest, load_data

ECE_BINS = 15
BATCH = 32


def open_predictor(model: Path | str, taxonomy_path: Path | str | None) -> Predictor:
    """The model as the service runs it, with its own calibration (no threshold overrides)."""
    from service.settings import Settings

    settings = Settings(match_threshold=None, mismatch_threshold=None)
    return Predictor.open(model, settings=settings, taxonomy_path=taxonomy_path)


def predict_logits(predictor: Predictor, paths: Sequence[Path], batch: int = BATCH) -> np.ndarray:
    """Logits [N, C] of the photos, decoded and resized the service's way, in batches."""
    chunks = []
    for start in range(0, len(paths), batch):
        arrays = [predictor.prepare(p.read_bytes()) for p in paths[start : start + batch]]
        chunks.append(predictor.run(np.stack(arrays)))
    if not chunks:
        return np.zeros((0, len(predictor.classes)), dtype=np.float32)
    return np.concatenate(chunks)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = ECE_BINS) -> tuple[float, list[dict[str, float]]]:
    """ECE of top-class confidences, and the per-bin table for the reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        if not inside.any():
            continue
        acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
        ece += inside.mean() * abs(acc - conf)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(inside.sum()),
                      "accuracy": acc, "confidence": conf})
    return float(ece), table


@dataclass(frozen=True)
class Pairs:
    """Verdicts on the genuine and impostor pairs of a set of photos."""

    photo: np.ndarray  # index of the photo
    vin_parent: list[str]
    genuine: np.ndarray  # bool
    verdicts: list[Verdict]

    def rates(self) -> dict[str, float | int]:
        genuine, impostor = self.genuine, ~self.genuine
        verdicts = np.array([v.value for v in self.verdicts])
        n_gen, n_imp = int(genuine.sum()), int(impostor.sum())
        return {
            "false_match_rate": float((verdicts[impostor] == "match").mean()) if n_imp else 0.0,
            "false_mismatch_rate": (
                float((verdicts[genuine] == "mismatch").mean()) if n_gen else 0.0
            ),
            "automation_rate": float((verdicts[genuine] == "match").mean()) if n_gen else 0.0,
            "mismatch_detection_rate": (
                float((verdicts[impostor] == "mismatch").mean()) if n_imp else 0.0
            ),
            "n_genuine_pairs": n_gen,
            "n_impostor_pairs": n_imp,
        }


def judge_pairs(predictor: Predictor, logits: np.ndarray, true_parents: Sequence[str]) -> Pairs:
    """Every photo against every parent's VIN, with the service's verdict."""
    parents = list(dict.fromkeys(c.parent for c in predictor.classes))
    photo, vin_parent, genuine, verdicts = [], [], [], []
    for i, row in enumerate(logits):
        for parent in parents:
            photo.append(i)
            vin_parent.append(parent)
            genuine.append(parent == true_parents[i])
            verdicts.append(predictor.decide_parent(row, parent).verdict)
    return Pairs(np.array(photo), vin_parent, np.array(genuine, dtype=bool), verdicts)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray,
                           classes: Sequence[VehicleClass]) -> dict[str, Any]:
    """The scalar metrics of one split, from class indices and (calibrated) probabilities."""
    from sklearn.metrics import (
        accuracy_score,
        matthews_corrcoef,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    y_pred = probs.argmax(1)
    parents = np.array([c.parent for c in classes])
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    confidence = probs.max(1)
    ece, _ = expected_calibration_error(confidence, y_pred == y_true)
    wrong = y_pred != y_true
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "top3_accuracy": float(
            top_k_accuracy_score(y_true, probs, k=min(3, len(classes)),
                                 labels=np.arange(len(classes)))
        ),
        "parent_accuracy": float(accuracy_score(parents[y_true], parents[y_pred])),
        "errors_within_parent": (
            float((parents[y_true][wrong] == parents[y_pred][wrong]).mean()) if wrong.any()
            else 0.0
        ),
        "ece": ece,
    }


def labelled_split(model: Path | str, manifest: Manifest, split: str,
                   taxonomy_path: Path | str | None) -> tuple[Predictor, list[Entry], np.ndarray]:
    """The model opened the service's way, the split's entries and their class indices."""
    entries = manifest.split(split)
    if not entries:
        raise DataError(f"the {split} split of the manifest is empty")
    predictor = open_predictor(model, taxonomy_path)
    index_of = {c.id: i for i, c in enumerate(predictor.classes)}
    return predictor, entries, np.array([index_of[e.class_id] for e in entries])


def evaluate(model: Path | str, manifest: Manifest, *, split: str = "test",
             taxonomy_path: Path | str | None = None, out: Path | str) -> dict[str, Any]:
    """Run the split through the model the service's way; write the report to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    predictor, entries, y_true = labelled_split(model, manifest, split, taxonomy_path)
    classes = predictor.classes
    logits = predict_logits(predictor, [manifest.path_of(e) for e in entries])
    probs = softmax(np.asarray(logits, dtype=np.float64) / predictor.rule.temperature)
    metrics = classification_metrics(y_true, probs, classes)
    true_parents = [classes[i].parent for i in y_true]
    pairs = judge_pairs(predictor, logits, true_parents)
    metrics.update(pairs.rates())
    metrics.update(
        split=split,
        calibrated=predictor.rule.calibrated,
        calibration_id=predictor.rule.calibration_id,
        temperature=predictor.rule.temperature,
        match_threshold=predictor.rule.thresholds.match,
        mismatch_threshold=predictor.rule.thresholds.mismatch,
        model=str(model),
        manifest_sha256=manifest.sha256,
    )
    write_report(out, metrics, entries, manifest, classes, y_true, probs, pairs)
    return metrics


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[VehicleClass],
                    manifest: Manifest) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class, worst precision first (thesis Table 5.4)."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    rows = [
        {"class_id": c.id, "label": c.label, "parent": c.parent,
         "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
         "support": int(support[i]),
         "train_images": manifest.counts.get(c.id, {}).get("train", 0)}
        for i, c in enumerate(classes) if support[i] or (y_pred == i).any()
    ]
    return sorted(rows, key=lambda r: (r["precision"], r["class_id"]))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot_confusion(path: Path, y_true: Sequence[str], y_pred: Sequence[str],
                    labels: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    side = max(5.0, 0.28 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 20:
        for (r, c), v in np.ndenumerate(matrix):
            if v:
                ax.text(c, r, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > matrix.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(path: Path, table: list[dict[str, float]], ece: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar([r["low"] for r in table], [r["accuracy"] for r in table],
           width=[r["high"] - r["low"] for r in table], align="edge", alpha=0.7,
           edgecolor="black", label="accuracy per confidence bin")
    ax.set_xlabel("top-class confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, metrics: dict[str, Any], entries: list[Entry], manifest: Manifest,
                 classes: Sequence[VehicleClass], y_true: np.ndarray, probs: np.ndarray,
                 pairs: Pairs) -> None:
    """metrics.json, the CSV files, the plots and report.md."""
    y_pred = probs.argmax(1)
    top3 = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    _write_csv(out / "predictions.csv", [
        {"path": e.path, "true_class": classes[t].id, "predicted_class": classes[p].id,
         "confidence": f"{probs[i, p]:.6f}", "true_parent": classes[t].parent,
         "predicted_parent": classes[p].parent,
         "top3": " ".join(classes[k].id for k in top3[i])}
        for i, (e, t, p) in enumerate(zip(entries, y_true, y_pred, strict=True))
    ])
    _write_csv(out / "pairs.csv", [
        {"path": entries[i].path, "vin_parent": parent, "genuine": bool(g), "verdict": v.value}
        for i, parent, g, v in zip(pairs.photo, pairs.vin_parent, pairs.genuine, pairs.verdicts,
                                   strict=True)
    ])
    table = per_class_table(y_true, y_pred, classes, manifest)
    _write_csv(out / "per_class.csv", table)
    ids = [c.id for c in classes]
    parents = list(dict.fromkeys(c.parent for c in classes))
    _plot_confusion(out / "confusion_classes.png", [ids[i] for i in y_true],
                    [ids[i] for i in y_pred], ids, "classes")
    _plot_confusion(out / "confusion_parents.png", [classes[i].parent for i in y_true],
                    [classes[i].parent for i in y_pred], parents, "parents")
    ece, bins = expected_calibration_error(probs.max(1), y_pred == y_true)
    _plot_reliability(out / "reliability.png", bins, ece)
    (out / "report.md").write_text(markdown_report(metrics, table), encoding="utf-8")


def markdown_report(metrics: dict[str, Any], table: list[dict[str, Any]]) -> str:
    scalar = ("n", "accuracy", "macro_precision", "macro_recall", "macro_f1", "mcc",
              "top3_accuracy", "parent_accuracy", "errors_within_parent", "ece")
    verdicts = ("false_match_rate", "false_mismatch_rate", "automation_rate",
                "mismatch_detection_rate", "n_genuine_pairs", "n_impostor_pairs")

    def cell(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [
        f"# Evaluation of {Path(metrics['model']).name} on the {metrics['split']} split",
        "",
        f"Calibration: {metrics['calibration_id'] or 'none'} (temperature "
        f"{metrics['temperature']:.3f}; match >= {metrics['match_threshold']:.4f}, mismatch >= "
        f"{metrics['mismatch_threshold']:.4f}). Manifest sha256 {metrics['manifest_sha256'][:16]}.",
        "",
        "## Classification", "", "| metric | value |", "|---|---|",
        *(f"| {k} | {cell(metrics[k])} |" for k in scalar),
        "",
        "`errors_within_parent`: share of the misclassified photos whose predicted class has the "
        "right parent (the thesis found 70-75 %, section 5.2).",
        "",
        "## Verdicts on genuine and impostor pairs", "", "| figure | value |", "|---|---|",
        *(f"| {k} | {cell(metrics[k])} |" for k in verdicts),
        "",
        "## Per class, worst precision first (thesis Table 5.4)", "",
        "| class | parent | precision | recall | F1 | support | train images |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['label']} | {r['parent']} | {r['precision']:.3f} | {r['recall']:.3f} | "
          f"{r['f1']:.3f} | {r['support']} | {r['train_images']} |" for r in table),
        "",
        "![classes](confusion_classes.png) ![parents](confusion_parents.png) "
        "![reliability](reliability.png)",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recognize evaluate",
        description="Evaluate a servable ONNX model on one split, through the service's own "
        "decoding, session options and verdict; write metrics, tables, plots and a report.",
    )
    p.add_argument("model", type=Path, help="the ONNX model file")
    p.add_argument("--data", type=Path, required=True,
                   help="split manifest (from `recognize train`), or an image folder / CSV "
                   "split anew with --split-seed")
    p.add_argument("--split", default="test", help="train, val or test (default test)")
    p.add_argument("--taxonomy", type=Path,
                   help="taxonomy of the model (default: the packaged Mercedes-Benz one)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a new split (default 0)")
    p.add_argument("--out", type=Path, required=True, help="folder for the report")
    return p


def main(argv: list[str] | None = None) -> int:
    from service.core.errors import ModelContractError
    from service.core.taxonomy import load_taxonomy

    args = build_parser().parse_args(argv)

    def step() -> dict[str, Any]:
        manifest = load_data(args.data, load_taxonomy(args.taxonomy), seed=args.split_seed)
        return evaluate(args.model, manifest, split=args.split, taxonomy_path=args.taxonomy,
                        out=args.out)

    return run_step("recognize evaluate", step, (DataError, ModelContractError))


if __name__ == "__main__":
    raise SystemExit(main())
