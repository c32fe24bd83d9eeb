"""Prometheus for the tests: the binaries from scripts/fetch_prometheus.sh, a real server on
127.0.0.1, and the PromQL of the Grafana dashboard and the alert rules, parsed.

Without the binaries a test skips, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".tools" / "bin"
PROMETHEUS = TOOLS / "prometheus"
PROMTOOL = TOOLS / "promtool"
DASHBOARD = REPO / "deploy" / "grafana" / "recognize.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
ALERTS_TEST = REPO / "deploy" / "prometheus" / "alerts_test.yaml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The exporter's metrics the dashboard may use besides the service's own (NVIDIA DCGM exporter).
DCGM_METRICS = frozenset({"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"})
# What Grafana puts in place of its variables when the query runs; the tests do the same.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m"}


def require(binary: Path) -> Path:
    """The binary, or skip (locally) / fail (in CI) saying how to get it."""
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    reason = f"{binary.relative_to(REPO)} is missing: run scripts/fetch_prometheus.sh (make tools)"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


# --- PromQL ----------------------------------------------------------------------------------


def grafana_to_promql(expr: str, variables: str = ".*") -> str:
    """A dashboard expression as Grafana sends it, with every template variable set to
    ``variables`` (``.*``: the All value)."""
    for name, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?\w+\}?", variables, expr)


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector of a PromQL expression (raises ValueError if it does not parse)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def metric_names(expr: str) -> set[str]:
    return {s.name for s in selectors(expr) if s.name}


def dashboard_targets(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, expression) for every query of the dashboard, rows' panels included."""
    dashboard = json.loads(path.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    return [
        (panel.get("title", ""), target["expr"])
        for panel in panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


# --- a real Prometheus -------------------------------------------------------------------------


class PrometheusServer:
    """``prometheus`` on a free 127.0.0.1 port, scraping ``targets`` every second."""

    def __init__(self, binary: Path, targets: list[str], workdir: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "ray", "static_configs": [{"targets": targets}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._command = [
            str(binary),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    def __enter__(self) -> PrometheusServer:
        with open(self.log, "wb") as out:
            self._process = subprocess.Popen(
                self._command, cwd=self._workdir, stdout=out, stderr=subprocess.STDOUT
            )
        self._wait(lambda: self.client.get("/-/ready").status_code == 200, 30, "ready")
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        shutil.rmtree(self._workdir / "data", ignore_errors=True)

    def _wait(self, condition: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                pytest.fail(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                if condition():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        pytest.fail(f"prometheus not {what} after {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def targets(self) -> list[dict[str, Any]]:
        body = self.client.get("/api/v1/targets").json()
        return list(body["data"]["activeTargets"])

    def wait_until_up(self, timeout_s: float = 60) -> None:
        def all_up() -> bool:
            targets = self.targets()
            return bool(targets) and all(t["health"] == "up" for t in targets)

        self._wait(all_up, timeout_s, f"scraping its targets ({self.targets()})")

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (or at unix time ``at``); fails the test on any
        query error."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        response = self.client.get("/api/v1/query", params=params)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        assert body["data"]["resultType"] in ("vector", "scalar"), (expr, body)
        result = body["data"]["result"]
        return result if body["data"]["resultType"] == "vector" else [{"value": result}]

    def value(self, expr: str, at: float | None = None) -> float:
        """The single value of ``expr`` (0 when it has no series, as a counter not yet seen)."""
        result = self.query(expr, at)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else 0.0
