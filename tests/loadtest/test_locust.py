"""Locust, headless and for real, for 20 s against the real service: no valid request may fail.

The locustfile's stages shrink to the 20 s run (-t) and its burst to 6 users (-u), so the service
sees warm-up, steady, burst and recovery; malformed VINs in the mix must come back 422
``invalid_vin`` (Locust counts that as a success), everything else 200 with a verdict.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    REPO,
    RunningService,
    free_port,
    start_service,
    stop_service,
)

pytestmark = pytest.mark.integration

LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
RUN_TIME_S = 20
STAGES = ["warm-up", "steady", "burst", "recovery"]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    log = tmp_path_factory.mktemp("loadtest-service") / "serve.log"
    # Its own metrics port, so that it cannot collide with another service on this machine.
    service = start_service({"RECOGNIZE_METRICS_PORT": str(free_port())}, log)
    yield service
    stop_service(service.process)


@pytest.fixture(scope="module")
def locust_run(
    running: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    prefix = tmp_path_factory.mktemp("locust") / "locust"
    env = {k: v for k, v in os.environ.items() if k != "RECOGNIZE_API_KEY"}
    if running.api_key:  # the locustfile sends it as a Bearer token
        env["RECOGNIZE_API_KEY"] = running.api_key
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            f"{RUN_TIME_S}s",
            "--host",
            running.base_url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIME_S + 120,  # plus making the photos and shutting down
    )
    return result, prefix


def test_locust_exits_zero(locust_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, _ = locust_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_no_request_failed(locust_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, prefix = locust_run
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows, "empty stats CSV"
    by_name = {row["Name"]: row for row in rows}
    assert int(by_name["Aggregated"]["Request Count"]) > 0
    assert int(by_name["/recognize"]["Request Count"]) > 0
    assert all(int(row["Failure Count"]) == 0 for row in rows), rows
    for suffix in ("failures", "exceptions", "stats_history"):
        assert Path(f"{prefix}_{suffix}.csv").is_file()


def test_stages_reported(locust_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, prefix = locust_run
    summary = json.loads(Path(f"{prefix}_stages.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert summary["failures"] == 0
    assert summary["requests"] > 0
    steady = summary["stages"][1]
    assert steady["throughput_rps"] > 0
    assert steady["p50_ms"] <= steady["p90_ms"] <= steady["p99_ms"]
    assert set(summary["verdicts"]) <= {"match", "mismatch", "manual_review"}
    assert sum(summary["verdicts"].values()) > 0
    assert "Per stage" in result.stdout and "verdict mix" in result.stdout
    with open(f"{prefix}_requests.csv", newline="") as handle:
        requests = list(csv.DictReader(handle))
    assert len(requests) == summary["requests"]
    assert {r["stage"] for r in requests} <= set(STAGES)


def test_latency_plot(locust_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    from loadtest.plot import main as plot_main

    _, prefix = locust_run
    out = prefix.parent / "latency.png"
    assert plot_main([str(prefix), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
