#!/usr/bin/env python3
"""The Fashion-MNIST run behind issue 12's closing figures, as Markdown tables.

1. Writes N training-part photos per class as 64 px JPEGs (``service.modeltools.fashion_mnist``).
2. Training throughput: one epoch each with 1 worker x 2 CPUs and 2 workers x 1 CPU, same data,
   same machine, one after the other (images/s as ``recognize train`` reports it).
3. The full run: ``recognize train`` (2 workers, from the ImageNet weights), its test-split
   metrics beside scikit-learn's on the same predictions (``predictions.csv``).
4. ``recognize calibrate`` on the val split, then ``recognize evaluate`` of the calibrated file:
   the certificate and the false-match rate measured on the test split.

Run from the checkout after ``make venv data`` (about 15 minutes on 2 shared cores):

    .venv/bin/python scripts/fashion_mnist_run.py --out results/fashion-mnist
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from service.modeltools import fashion_mnist  # noqa: E402

EXAMPLE = REPO / "examples" / "fashion-mnist"
COMMON = ["--taxonomy", str(EXAMPLE / "taxonomy.yaml"), "--input-size", "64",
          "--batch-size", "32", "--lr", "1e-3", "--warmup-epochs", "0.5", "--randaugment", "1,5",
          "--mixup", "0", "--ema-decay", "0.99"]


def recognize(*args: str, cwd: Path) -> str:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=cwd,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"recognize {args[0]} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    print(f"recognize {args[0]}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result.stdout


def sklearn_on_predictions(path: Path) -> dict[str, float]:
    """scikit-learn's metrics straight from evaluate's predictions.csv."""
    from sklearn import metrics as skm

    rows = list(csv.DictReader(path.open()))
    true, pred = [r["true_class"] for r in rows], [r["predicted_class"] for r in rows]
    p, r, f, _ = skm.precision_recall_fscore_support(true, pred, average="macro", zero_division=0)
    return {
        "accuracy": skm.accuracy_score(true, pred),
        "macro_precision": p,
        "macro_recall": r,
        "macro_f1": f,
        "mcc": skm.matthews_corrcoef(true, pred),
        "top3_accuracy": sum(t in row["top3"].split() for t, row in zip(true, rows,
                                                                          strict=True)) / len(rows),
        "parent_accuracy": skm.accuracy_score([r["true_parent"] for r in rows],
                                              [r["predicted_parent"] for r in rows]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "fashion-mnist")
    parser.add_argument("--per-class", type=int, default=300, help="photos per class (300)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the full run (5)")
    parser.add_argument("--target-false-match", type=float, default=0.005)
    parser.add_argument("--target-false-mismatch", type=float, default=0.02)
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args()
    out = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    photos = out / "photos"
    if not photos.exists():
        fashion_mnist.write_image_folder(REPO / ".data" / "fashion-mnist", photos,
                                         per_class=args.per_class, size=64)

    throughput = {}
    for workers, cpus in ((1, 2), (2, 1)):
        run = out / f"throughput-{workers}w"
        if not (run / "train_report.json").exists():
            recognize("train", "--data", str(photos), "--out", str(run), *COMMON, "--epochs", "1",
                      "--workers", str(workers), "--cpus-per-worker", str(cpus), cwd=out)
        history = json.loads((run / "train_report.json").read_text())["history"]
        throughput[workers] = history[0]["train_images_per_s"]

    full = out / "full"
    if not (full / "train_report.json").exists():
        recognize("train", "--data", str(photos), "--out", str(full), *COMMON,
                  "--epochs", str(args.epochs), "--workers", "2", cwd=out)
    metrics = json.loads((full / "eval-test" / "metrics.json").read_text())
    sklearn = sklearn_on_predictions(full / "eval-test" / "predictions.csv")
    calibrated = full / "model.calibrated.onnx"
    certificate = json.loads(recognize(
        "calibrate", str(full / "model.onnx"), "--data", str(full / "manifest.json"),
        "--taxonomy", str(EXAMPLE / "taxonomy.yaml"), "--target-false-match",
        str(args.target_false_match), "--target-false-mismatch", str(args.target_false_mismatch),
        "--confidence", str(args.confidence), "--out", str(calibrated), cwd=out))
    tested = json.loads(recognize(
        "evaluate", str(calibrated), "--data", str(full / "manifest.json"), "--taxonomy",
        str(EXAMPLE / "taxonomy.yaml"), "--split", "test", "--out", str(full / "eval-calibrated"),
        cwd=out))

    cert = certificate["certificate"]
    print(f"# Fashion-MNIST run ({platform.node()}, {time.strftime('%Y-%m-%d')}, "
          f"{args.per_class} photos per class at 64 px)\n")
    print("## Training throughput (1 epoch, same data, same machine, one after the other)\n")
    print("| workers x CPUs | images/s |\n|---|---|")
    print(f"| 1 x 2 | {throughput[1]:.1f} |\n| 2 x 1 | {throughput[2]:.1f} |")
    print(f"\nratio 2 workers / 1 worker: {throughput[2] / throughput[1]:.2f}\n")
    print(f"## Test split ({metrics['n']} photos; full run: {args.epochs} epochs, 2 workers)\n")
    print("| metric | recognize evaluate | scikit-learn on predictions.csv |\n|---|---|---|")
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "mcc",
                "top3_accuracy", "parent_accuracy"):
        print(f"| {key} | {metrics[key]:.4f} | {sklearn[key]:.4f} |")
    for key in ("errors_within_parent", "ece"):
        print(f"| {key} | {metrics[key]:.4f} | (no scikit-learn function) |")
    print("\n## Certificate (val split) and the test split\n")
    print("| | |\n|---|---|")
    print(f"| calibration | {certificate['id']}, temperature {certificate['temperature']:.3f} |")
    print(f"| thresholds | match {certificate['match_threshold']:.4f}, mismatch "
          f"{certificate['mismatch_threshold']:.4f} |")
    print(f"| target false match / confidence | {cert['target_false_match']} / "
          f"{cert['confidence']} |")
    print(f"| pairs (val) | {cert['n_genuine_pairs']} genuine, "
          f"{cert['n_impostor_pairs']} impostor |")
    print(f"| false matches (val) | {cert['false_matches']}, "
          f"bound {cert['false_match_bound']:.5f} |")
    print(f"| false mismatches (val) | {cert['false_mismatches']}, bound "
          f"{cert['false_mismatch_bound']:.5f} (target {cert['target_false_mismatch']}) |")
    print(f"| automation rate (val) | {cert['automation_rate']:.4f} "
          f"{json.dumps({k: round(v, 3) for k, v in cert['automation_by_parent'].items()})} |")
    print(f"| false-match rate (test) | {tested['false_match_rate']:.5f} of "
          f"{tested['n_impostor_pairs']} impostor pairs |")
    print(f"| false-mismatch rate (test) | {tested['false_mismatch_rate']:.5f} of "
          f"{tested['n_genuine_pairs']} genuine pairs |")
    print(f"| automation rate (test) | {tested['automation_rate']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
