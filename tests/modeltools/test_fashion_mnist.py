"""Fashion-MNIST end to end: `recognize train` (Ray Train, 2 CPU workers, from the ImageNet
weights and from random ones) → `evaluate` → `calibrate` → the real service over HTTP.

Real labelled photos (the Debian package dataset-fashion-mnist, `make data`), upscaled to 64 px
JPEGs, with the test taxonomy and VIN rules of examples/fashion-mnist/. Kept small for CI: 1,000
training-part photos, 3 epochs, and a pool of 1,000 test-part photos no run ever trains on.
Measured on the 2-core box with it otherwise idle: 206 s for tests/modeltools/ and
tests/unit/test_export.py together (both training runs 107 s, the resumed epoch 47 s, the
service 22 s); at a load average of 20-36 from other work the same took 891 s.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ray.train")
pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from sklearn import metrics as skm

from service.core.taxonomy import load_taxonomy
from service.core.verdict import Thresholds, Verdict, decide, softmax
from service.core.vin import load_vin_rules
from service.modeltools import fashion_mnist
from service.modeltools.calibrate import certify
from service.modeltools.dataset import Manifest
from service.modeltools.evaluate import open_predictor, predict_logits
from tests.integration.conftest import CLUSTER_LAYOUT, start_service, stop_service
from tests.paths import REPO

EXAMPLE = REPO / "examples" / "fashion-mnist"
TAXONOMY_PATH, VIN_RULES_PATH = EXAMPLE / "taxonomy.yaml", EXAMPLE / "vin_rules.yaml"
TAXONOMY = load_taxonomy(TAXONOMY_PATH)
SOURCE = REPO / ".data" / "fashion-mnist"
TRAIN = [
    "--taxonomy", str(TAXONOMY_PATH), "--input-size", "64", "--epochs", "3",
    "--workers", "2", "--batch-size", "32", "--lr", "1e-3", "--warmup-epochs", "0.5",
    "--randaugment", "1,5", "--mixup", "0", "--ema-decay", "0.99",
]
# Targets the small CI splits can back: the val split's 80 photos give 320 impostor pairs (a
# 0.02 bound needs 149 with none false) and 80 genuine ones (0.05 needs 59).
TARGET_FM, TARGET_FMM, CONFIDENCE = 0.02, 0.05, 0.95


def recognize(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECOGNIZE_", "MLFLOW_"))}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=900,
    )
    if check and result.returncode != 0:
        pytest.fail(f"recognize {args[0]} exited {result.returncode}:\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SOURCE / "train-labels-idx1-ubyte.gz").is_file():
        pytest.fail(f"{SOURCE} missing: run `make data` (make test does)")
    root = tmp_path_factory.mktemp("fashion-mnist")
    fashion_mnist.write_image_folder(SOURCE, root / "photos", per_class=100, size=64)
    return root


@pytest.fixture(scope="module")
def pretrained(work: Path) -> Path:
    recognize("train", "--data", str(work / "photos"), "--out", str(work / "imagenet"), *TRAIN,
              "--pretrained", "imagenet", cwd=work)
    return work / "imagenet"


@pytest.fixture(scope="module")
def random_init(work: Path, pretrained: Path) -> Path:
    """The same run from random weights, on the same split (the first run's manifest)."""
    recognize("train", "--data", str(pretrained / "manifest.json"), "--out",
              str(work / "random"), *TRAIN, "--pretrained", "none", cwd=work)
    return work / "random"


def report(run: Path) -> dict[str, Any]:
    return json.loads((run / "train_report.json").read_text())


def test_fine_tuning_from_imagenet_beats_random_weights(pretrained: Path,
                                                        random_init: Path) -> None:
    tuned, scratch = report(pretrained), report(random_init)
    print(f"\ntest accuracy: ImageNet start {tuned['test_metrics']['accuracy']:.3f}, random "
          f"start {scratch['test_metrics']['accuracy']:.3f}; val {tuned['best_val_accuracy']:.3f}"
          f" vs {scratch['best_val_accuracy']:.3f}")
    assert tuned["test_metrics"]["accuracy"] > scratch["test_metrics"]["accuracy"] + 0.1
    assert tuned["best_val_accuracy"] > scratch["best_val_accuracy"] + 0.1
    assert tuned["test_metrics"]["accuracy"] > 0.6  # far above the 0.1 of guessing


def test_the_run_is_tracked_in_mlflow_with_its_artifacts(work: Path, pretrained: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    run_id = report(pretrained)["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert json.loads(run.data.params["arch"]) == "tf_efficientnet_lite0"
    assert json.loads(run.data.params["workers"]) == 2
    history = client.get_metric_history(run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3]
    assert run.data.metrics["test_accuracy"] == report(pretrained)["test_metrics"]["accuracy"]
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"manifest.json", "model.onnx", "train_report.json", "eval-test"} <= names
    assert "eval-test/metrics.json" in {a.path for a in client.list_artifacts(run_id, "eval-test")}


def test_training_resumes_from_its_last_checkpoint(work: Path, random_init: Path) -> None:
    before = report(random_init)["history"]
    refused = recognize("train", "--data", str(work / "photos"), "--out", str(random_init),
                        *TRAIN, cwd=work, check=False)
    assert refused.returncode == 1 and "pass --resume" in refused.stderr
    resume = [*TRAIN[: TRAIN.index("--epochs")], "--epochs", "4",
              *TRAIN[TRAIN.index("--epochs") + 2 :]]
    recognize("train", "--data", str(work / "photos"), "--out", str(random_init), *resume,
              "--pretrained", "none", "--resume", cwd=work)
    after = report(random_init)["history"]
    assert [m["epoch"] for m in after] == [1, 2, 3, 4]
    assert after[:3] == before  # epochs 1-3 came back from the checkpoint, not a new run


def test_evaluation_equals_scikit_learn_on_the_same_predictions(pretrained: Path) -> None:
    metrics = json.loads((pretrained / "eval-test" / "metrics.json").read_text())
    with (pretrained / "eval-test" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    manifest = Manifest.model_validate_json((pretrained / "manifest.json").read_text())
    test = manifest.split("test")
    assert [r["path"] for r in rows] == [e.path for e in test]
    # The photos again, through the service's Predictor: the same predictions as the CSV.
    predictor = open_predictor(pretrained / "model.onnx", TAXONOMY_PATH)
    probs = softmax(predict_logits(predictor, [manifest.path_of(e) for e in test]))
    ids = [c.id for c in TAXONOMY.classes]
    parent = {c.id: c.parent for c in TAXONOMY.classes}
    y_true = [ids.index(e.class_id) for e in test]
    y_pred = list(probs.argmax(1))
    assert [ids[i] for i in y_pred] == [r["predicted_class"] for r in rows]
    assert np.allclose(probs.max(1), [float(r["confidence"]) for r in rows], atol=1e-6)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average="macro",
                                                     zero_division=0)
    expected = {
        "n": len(test),
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "macro_precision": p,
        "macro_recall": r,
        "macro_f1": f,
        "mcc": skm.matthews_corrcoef(y_true, y_pred),
        "top3_accuracy": skm.top_k_accuracy_score(y_true, probs, k=3, labels=range(len(ids))),
        "parent_accuracy": skm.accuracy_score([parent[ids[i]] for i in y_true],
                                              [parent[ids[i]] for i in y_pred]),
    }
    print("\n| metric | recognize evaluate | scikit-learn |\n|---|---|---|")
    for key, value in expected.items():
        print(f"| {key} | {metrics[key]:.6f} | {value:.6f} |")
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    # ECE (no scikit-learn function): 15 equal-width bins of the top-class confidence.
    confidence, correct = probs.max(1), probs.argmax(1) == np.array(y_true)
    bins = np.minimum((confidence * 15 - 1e-12).astype(int), 14)
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
              for b in range(15) if (bins == b).any())
    assert metrics["ece"] == pytest.approx(ece, abs=1e-9)
    wrong = np.array(y_pred) != np.array(y_true)
    within = [parent[ids[t]] == parent[ids[q]] for t, q, w in zip(y_true, y_pred, wrong,
                                                                  strict=True) if w]
    assert metrics["errors_within_parent"] == pytest.approx(np.mean(within))
    table = list(csv.DictReader((pretrained / "eval-test" / "per_class.csv").open()))
    assert [float(t["precision"]) for t in table] == sorted(float(t["precision"]) for t in table)
    for name in ("confusion_classes.png", "confusion_parents.png", "reliability.png",
                 "report.md", "pairs.csv"):
        assert (pretrained / "eval-test" / name).stat().st_size > 0


@pytest.fixture(scope="module")
def calibrated(pretrained: Path) -> Path:
    out = pretrained / "model.calibrated.onnx"
    recognize("calibrate", str(pretrained / "model.onnx"), "--data",
              str(pretrained / "manifest.json"), "--taxonomy", str(TAXONOMY_PATH),
              "--target-false-match", str(TARGET_FM), "--target-false-mismatch",
              str(TARGET_FMM), "--confidence", str(CONFIDENCE), "--out", str(out),
              cwd=pretrained)
    recognize("evaluate", str(out), "--data", str(pretrained / "manifest.json"), "--taxonomy",
              str(TAXONOMY_PATH), "--out", str(pretrained / "eval-calibrated"), cwd=pretrained)
    return out


def test_calibrate_certifies_into_the_model_file(pretrained: Path, calibrated: Path) -> None:
    info = json.loads(recognize("model-info", str(calibrated), cwd=pretrained).stdout)
    assert info["calibrated"] and info["calibration_fits_graph"]
    certificate = info["calibration"]["certificate"]
    manifest = Manifest.model_validate_json((pretrained / "manifest.json").read_text())
    assert certificate["manifest_sha256"] == manifest.sha256
    assert certificate["n_impostor_pairs"] == 4 * certificate["n_genuine_pairs"] == 4 * len(
        manifest.split("val"))
    assert certificate["false_match_bound"] <= TARGET_FM
    assert certificate["false_mismatch_bound"] <= TARGET_FMM
    metrics = json.loads((pretrained / "eval-calibrated" / "metrics.json").read_text())
    assert metrics["calibrated"] and metrics["calibration_id"] == info["calibration"]["id"]
    print(f"\ncertificate: {json.dumps(certificate, indent=1)}\ntest split: false-match rate "
          f"{metrics['false_match_rate']:.4f} on {metrics['n_impostor_pairs']} impostor pairs, "
          f"automation {metrics['automation_rate']:.3f}")
    plain = json.loads(recognize("model-info", str(pretrained / "model.onnx"),
                                 cwd=pretrained).stdout)
    assert not plain["calibrated"] and plain["calibration"] is None
    too_strict = recognize("calibrate", str(pretrained / "model.onnx"), "--data",
                           str(pretrained / "manifest.json"), "--taxonomy", str(TAXONOMY_PATH),
                           "--out", str(pretrained / "never.onnx"), cwd=pretrained, check=False)
    assert too_strict.returncode == 1 and "at least 598" in too_strict.stderr
    assert not (pretrained / "never.onnx").exists()


def test_calibrated_false_match_rate_holds_on_disjoint_photos_across_seeds(
    work: Path, pretrained: Path
) -> None:
    """1,000 test-part photos no run trained on, split 5 ways into calibration and test halves:
    the threshold certified on one half (the issue's 0.5 % at 95 %) keeps the false-match rate
    of the other within the target, and the same calibrated probabilities at the most lenient
    threshold do not (so the check can fail)."""
    pool = work / "pool"
    fashion_mnist.write_image_folder(SOURCE, pool, part="test", per_class=100, size=64)
    paths = sorted(pool.glob("*/*.jpg"))
    ids = [c.id for c in TAXONOMY.classes]
    labels = np.array([ids.index(p.parent.name) for p in paths])
    classes = list(TAXONOMY.classes)
    parents = list(TAXONOMY.parents)
    logits = predict_logits(open_predictor(pretrained / "model.onnx", TAXONOMY_PATH), paths)

    def false_match_rate(rows: np.ndarray, thresholds: Thresholds, temperature: float) -> float:
        verdicts = [decide(logits[i], classes, expected_parent=q, thresholds=thresholds,
                           temperature=temperature).verdict
                    for i in rows for q in parents if q != classes[labels[i]].parent]
        return float(np.mean([v is Verdict.MATCH for v in verdicts]))

    target = 0.005  # 500 calibration photos give 2,000 impostor pairs (598 are needed)
    rates, lenient = [], []
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(paths))
        calibration, test = order[:500], order[500:]
        found = certify(logits[calibration], labels[calibration], classes,
                        target_false_match=target, target_false_mismatch=TARGET_FMM,
                        confidence=CONFIDENCE)
        rates.append(false_match_rate(test, found.thresholds, found.temperature))
        lenient.append(false_match_rate(test, Thresholds(0.51, 0.51), found.temperature))
    print(f"\nfalse-match rate on the held-out halves (target {target}): "
          f"{[round(r, 4) for r in rates]}; at the lenient 0.51 threshold: "
          f"{[round(r, 4) for r in lenient]}")
    assert max(rates) <= target
    assert min(lenient) > target


def test_served_verdicts_equal_evaluate(pretrained: Path, calibrated: Path,
                                        tmp_path: Path) -> None:
    """The real service (Ingress + Classifier, over HTTP) with the test taxonomy and VIN rules
    gives each test photo, with its own parent's VIN and another's, evaluate's verdict."""
    with (pretrained / "eval-calibrated" / "pairs.csv").open() as handle:
        expected = {(r["path"], r["vin_parent"]): r["verdict"] for r in csv.DictReader(handle)}
    with (pretrained / "eval-calibrated" / "predictions.csv").open() as handle:
        predictions = {r["path"]: r for r in csv.DictReader(handle)}
    info = json.loads(recognize("model-info", str(calibrated), cwd=pretrained).stdout)
    rules = load_vin_rules(VIN_RULES_PATH)
    parents = list(TAXONOMY.parents)
    manifest = Manifest.model_validate_json((pretrained / "manifest.json").read_text())
    service = start_service(
        {
            **CLUSTER_LAYOUT,
            "RECOGNIZE_MODEL_PATH": str(calibrated),
            "RECOGNIZE_TAXONOMY_PATH": str(TAXONOMY_PATH),
            "RECOGNIZE_VIN_RULES_PATH": str(VIN_RULES_PATH),
            # Garments are no vehicles: the vehicle gate (ImageNet's cars, 224 px) is a check of
            # the Mercedes-Benz service, not of this taxonomy's 64 px model.
            "RECOGNIZE_GATE_ENABLED": "false",
        },
        tmp_path / "serve.log",
    )
    try:
        with service.client() as client:
            details = client.get("/v1/model").json()
            assert details["calibration"]["calibrated"] is True
            assert details["calibration"]["id"] == info["calibration"]["id"]
            assert details["calibration"]["certificate"] == info["calibration"]["certificate"]
            assert details["match_threshold"] == info["calibration"]["match_threshold"]
            assert details["parents"] == parents
            compared = 0
            for entry in manifest.split("test"):
                row = predictions[entry.path]
                own = parents.index(row["true_parent"])
                for parent in (parents[own], parents[(own + 1) % len(parents)]):
                    with manifest.path_of(entry).open("rb") as photo:
                        response = client.post(
                            "/recognize",
                            files={"image": ("photo.jpg", photo, "image/jpeg")},
                            data={"vin": fashion_mnist.vin_naming(rules, parent)},
                        )
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["vin"]["expected_parent"] == parent
                    assert body["verdict"] == expected[(entry.path, parent)], entry.path
                    assert body["prediction"]["class_id"] == row["predicted_class"]
                    assert body["prediction"]["confidence"] == pytest.approx(
                        float(row["confidence"]), abs=1e-5)
                    assert body["calibration"]["calibrated"] is True
                    assert body["calibration"]["id"] == info["calibration"]["id"]
                    compared += 1
            assert compared == 2 * len(manifest.split("test"))
    finally:
        stop_service(service.process)
