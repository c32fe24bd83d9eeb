"""The GPU benchmark's script, run end to end on this machine's CPU.

``loadtest/gpu_bench.py`` only meets a GPU when a device session has one, and a broken script
there costs scarce device minutes. Here its own ``--provider CPUExecutionProvider`` switch
stands in for the GPU (the only fake: no GPU can run here); everything else is what the device
run does: the fp16 export with its parity check, raw onnxruntime per batch size, the service
in the cluster's layout (proxy, Ingress, Classifier with batch buckets), HTTP cells from load
processes and Classifier-handle cells from Ray drivers, once per classifier replica count.
Figures are not judged, only that every step produced them without errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_gpu_bench_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "loadtest.gpu_bench", "--out", str(out),
        "--provider", "CPUExecutionProvider", "--arch", "convnext_tiny", "--size", "64",
        "--batches", "1,2", "--max-batch-size", "2", "--concurrency", "2",
        "--handle-concurrency", "4", "--seconds", "2", "--ingress-replicas", "1",
        "--load-processes", "1", "--classifier-replicas", "1,2",
    ]  # fmt: skip
    # Ingress and Classifier each ask for a whole CPU; CI has 2 cores and Ray's own need some.
    env = {**os.environ, "RECOGNIZE_RAY_NUM_CPUS": "4"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads((out / "gpu_bench.json").read_text())
    assert result["export_fp16"]["max_abs_diff"] < 5e-2  # the export's fp16 parity check
    assert [r["batch"] for r in result["raw_fp16"]] == [1, 2]
    assert all(r["images_per_s"] > 0 for r in result["raw_fp16"])
    # The vehicle gate runs beside the classifier, as in production; raw is timed with it too.
    assert [r["batch"] for r in result["raw_fp16_gate"]] == [1, 2]
    assert all(r["images_per_s"] > 0 for r in result["raw_fp16_gate"])
    assert [run["classifier_replicas"] for run in result["services"]] == [1, 2]
    for run in result["services"]:
        replicas = run["classifier_replicas"]
        assert "error" not in run, run
        assert run["cold_start_s"] > 0
        assert run["env"]["RECOGNIZE_CLASSIFIER_REPLICAS"] == str(replicas)
        assert run["env"]["RECOGNIZE_GATE_MODEL_PATH"].endswith("vehicle_gate_64_fp32.onnx")
        rows = {(r["kind"], r["concurrency"]): r for r in run["rows"]}
        assert set(rows) == {("http", 2), ("handle", 4)}
        for key, row in rows.items():
            assert "error" not in row, (replicas, key, row)
            assert row["ok"] > 0 and not row["errors"], (replicas, key, row)
            assert 1 <= row["mean_batch"] <= 2, (replicas, key, row)
        assert rows[("http", 2)]["decode_ms_mean"] > 0  # the ingress decoded the JPEGs
        assert run["memory"]["rss_mb"] > 0
        classifiers = [p for p in run["processes"] if "recognize:Classifier" in p["name"]]
        assert len(classifiers) == replicas, run["processes"]
        # In this layout too the Ingress calls the Classifier by gRPC.
        log = (out / f"service-{replicas}.log").read_text()
        assert "calls to the Classifier go by gRPC" in log
    table = (out / "gpu_bench.txt").read_text()
    assert "service, 1 classifier replica(s)" in table
    assert "service, 2 classifier replica(s)" in table
