"""The side-by-side benchmark in its quick mode: every row present, every figure sane.

Runs ``python -m loadtest.bench --quick`` for real (raw onnxruntime at batch sizes 1 and 2, the
service and the naive server started as subprocesses, concurrency 1 and 4, 2-second cells).
Triton is left out here (it has its own venv); ``test_triton_peer`` runs it where ``make
triton`` has been run (``make test`` runs it). The figures themselves are not judged: on a
shared 2-core box they vary too much for a timed test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.bench import STACK_TARGETS, TARGETS, TRITON_VENV
from service.inference.predictor import Predictor
from service.inference.session import ClassifierConfig, build_session
from tests.paths import DEMO_MODEL_PATH

REPO = Path(__file__).resolve().parents[2]
needs_model = pytest.mark.skipif(
    not DEMO_MODEL_PATH.is_file(), reason="demo model missing: run `make model`"
)


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--quick", "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result, json.loads(out.read_text())


def assert_sane_cell(cell: dict[str, Any]) -> None:
    assert cell["errors"] == 0, cell["first_error"]
    assert cell["requests"] > 0
    assert cell["throughput_rps"] > 0
    assert 0 < cell["p50_ms"] <= cell["p90_ms"] <= cell["p99_ms"]
    assert cell["mean_batch"] >= 1


def assert_sane_server(server: dict[str, Any], concurrency: list[int]) -> None:
    assert server["status"] == "ok", server
    assert [c["concurrency"] for c in server["cells"]] == concurrency
    for cell in server["cells"]:
        assert_sane_cell(cell)
    assert server["cold_start_s"] > 0
    for key in ("memory_ready", "memory_after_load"):
        memory = server[key]
        assert memory["processes"] >= 1
        assert 0 < memory["pss_mb"] <= memory["rss_mb"]
    assert server["idle_cpu_percent"] >= 0


@pytest.mark.integration
@needs_model
def test_quick_bench_has_every_row(tmp_path: Path) -> None:
    result, report = run_bench(tmp_path, "--peers", "service,naive")

    raw = report["raw"]
    assert [r["batch_size"] for r in raw["rows"]] == [1, 2]
    for row in raw["rows"]:
        assert row["images_per_s"] > 0
        assert row["calls"] >= 3
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert raw["ceiling"]["images_per_s"] == max(r["images_per_s"] for r in raw["rows"])
    assert raw["parallel"]["streams"] == os.cpu_count()
    assert raw["parallel"]["images_per_s"] > 0

    servers = report["servers"]
    assert set(servers) == {"service", "cluster", "pyproxy", "gather", "split", "naive", "triton"}
    assert_sane_server(servers["service"], [1, 4])
    assert_sane_server(servers["naive"], [1, 4])
    assert servers["service"]["memory_ready"]["processes"] > 1  # Ray's processes count too
    assert all(c["mean_batch"] == 1 for c in servers["naive"]["cells"])  # one at a time
    assert servers["triton"] == {"status": "skipped", "reason": "not in --peers"}
    assert servers["cluster"] == {"status": "skipped", "reason": "not in --peers"}
    # The served layout is one deployment listening itself: its CPU is the ingress's and
    # Ray's; Serve's proxy actor still runs but carries no request.
    for cell in servers["service"]["cells"]:
        groups = cell["cpu_ms_per_request"]
        assert groups["ingress"] > 0 and "classifier" not in groups, groups
        assert groups.get("proxy", 0) < 0.1 * groups["ingress"], groups
    for cell in servers["naive"]["cells"]:
        assert set(cell["cpu_ms_per_request"]) == {"server"}
    # The gate is on by default: the raw calls run it too, as the service does.
    assert raw["gate"] is not None and report["gate"] == raw["gate"]

    assert [r["concurrency"] for r in report["ratios"]] == [1, 4]
    for row in report["ratios"]:
        assert row["service_over_raw"] > 0
        assert row["service_over_raw_parallel"] > 0
        assert row["service_over_naive"] > 0
        assert row["service_over_triton"] is None
        assert row["p99_ms"]["service"] > 0 and row["p99_ms"]["naive"] > 0
    assert [t["target"] for t in report["targets"]] == [key for key, _, _ in TARGETS]
    assert [t["target"] for t in report["stack_targets"]] == [t[0] for t in STACK_TARGETS]

    for heading in ("raw onnxruntime", "ratios at equal concurrency", "targets"):
        assert heading in result.stdout


@pytest.mark.integration
@needs_model
def test_near_free_run_measures_the_cluster_layout_by_process_group(tmp_path: Path) -> None:
    """--near-free: the model's cost is gone (the raw ceiling is far above the demo model's
    ~10 img/s here), the gate is off, and the chart's layout shows its process groups, behind
    HAProxy (the default), and with the Ingress gathering images into one Classifier call per
    batch (the real path over HTTP, 64 clients). Serve's Python proxy (pyproxy) is the same
    service under another proxy setting, left to the benchmark itself to keep this test short."""
    result, report = run_bench(
        tmp_path,
        *("--near-free", "--peers", "cluster,gather"),
        *("--batch-sizes", "1", "--concurrency", "64"),
    )
    assert report["near_free"] is True and report["gate"] is None
    assert "near-free" in report["raw"]["model"]
    assert report["raw"]["ceiling"]["images_per_s"] > 300
    cells = {}
    for name in ("cluster", "gather"):
        server = report["servers"][name]
        assert server["status"] == "ok", server
        (cells[name],) = server["cells"]
        assert_sane_cell(cells[name])
        groups = cells[name]["cpu_ms_per_request"]
        for group in ("proxy", "ingress", "classifier", "ray"):
            assert groups[group] > 0, (name, groups)
    assert report["servers"]["service"]["status"] == "skipped"
    by_key = {t["target"]: t for t in report["stack_targets"]}
    assert by_key["cluster_images_per_batch"]["value"] == cells["cluster"]["mean_batch"]
    assert by_key["cluster_vs_triton"]["met"] is None  # no Triton cell in this run
    (ratios,) = report["ratios"]
    assert ratios["gather_over_cluster"] > 0
    # Gathering: 64 concurrent clients' images reach the Classifier several to a call.
    assert cells["gather"]["mean_batch"] > 1.5, cells["gather"]
    assert "CPU ms per request" in result.stdout


@pytest.mark.integration
@needs_model
@pytest.mark.skipif(
    not (TRITON_VENV / "bin" / "python").is_file(), reason="no .venv-triton: make triton"
)
def test_triton_peer(tmp_path: Path) -> None:
    _, report = run_bench(tmp_path, "--peers", "triton", "--batch-sizes", "1", "--concurrency", "4")
    triton = report["servers"]["triton"]
    assert_sane_server(triton, [4])
    assert report["servers"]["service"]["status"] == "skipped"


@needs_model
def test_peer_sessions_have_the_service_options() -> None:
    """The naive and Triton peers open the model like build_session does (spinning off)."""
    service_session, _ = build_session(ClassifierConfig(model_path=str(DEMO_MODEL_PATH)))
    peer_session = Predictor.open(DEMO_MODEL_PATH).session
    ours, theirs = peer_session.get_session_options(), service_session.get_session_options()
    assert ours.intra_op_num_threads == theirs.intra_op_num_threads
    assert ours.inter_op_num_threads == theirs.inter_op_num_threads
    assert ours.graph_optimization_level == theirs.graph_optimization_level
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert ours.get_session_config_entry(key) == theirs.get_session_config_entry(key) == "0"
    assert peer_session.get_providers() == service_session.get_providers()
