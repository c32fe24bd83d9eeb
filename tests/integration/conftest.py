"""Starts the real service (`recognize serve`: local Ray + Serve) once, talks HTTP to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.core.auth import create_key
from tests.paths import DEMO_MODEL_PATH, GATE_MODEL_PATH

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240
# The layout the Helm chart deploys: Ray's HTTP proxy, then separate Ingress and Classifier
# deployments. `recognize serve` on a CPU defaults to one deployment listening itself.
CLUSTER_LAYOUT = {"RECOGNIZE_CLASSIFIER_IN_INGRESS": "false", "RECOGNIZE_DIRECT_HTTP": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningService:
    def __init__(
        self,
        base_url: str,
        process: subprocess.Popen[bytes],
        log: Path,
        cold_start_s: float,
        api_key: str | None,
        metrics_port: int | None = None,
    ) -> None:
        self.base_url = base_url
        self.process = process
        self.log = log
        self.cold_start_s = cold_start_s
        self.api_key = api_key  # the test tenant's key; None when auth is switched off
        self.metrics_port = metrics_port  # the Ray node's metrics export (service/metrics.py)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, **kwargs: object) -> httpx.Client:
        headers = {**self.headers, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        kwargs.setdefault("timeout", 60.0)
        return httpx.Client(base_url=self.base_url, headers=headers, **kwargs)  # type: ignore[arg-type]


TEST_TENANT = "test-portal"


def start_service(env_overrides: dict[str, str], log: Path) -> RunningService:
    """`recognize serve` on a free port with a fresh API key for TEST_TENANT (unless the
    overrides switch authentication off), ready to serve."""
    if not DEMO_MODEL_PATH.is_file():
        pytest.fail(f"demo model {DEMO_MODEL_PATH} missing: run `make model` (make test does)")
    if not GATE_MODEL_PATH.is_file() and env_overrides.get("RECOGNIZE_GATE_ENABLED") != "false":
        pytest.fail(f"vehicle gate {GATE_MODEL_PATH} missing: run `make gate` (make test does)")
    port = free_port()
    api_key, entry = create_key(TEST_TENANT)
    env = {
        **os.environ,
        "RECOGNIZE_PORT": str(port),
        # Its own metrics export port: the default (8080) may be taken by another service here.
        "RECOGNIZE_METRICS_PORT": str(free_port()),
        "RECOGNIZE_API_KEYS": json.dumps([entry.model_dump()]),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"service exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            stop_service(process)
            pytest.fail(f"service not ready after {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")
    auth_off = env.get("RECOGNIZE_AUTH_DISABLED", "").lower() in ("1", "true", "yes")
    return RunningService(
        base_url,
        process,
        log,
        time.perf_counter() - started,
        None if auth_off else api_key,
        metrics_port=int(env["RECOGNIZE_METRICS_PORT"]),
    )


def descendants(pid: int) -> dict[int, str]:
    """pid -> command line of every process under `pid` (Ray's workers are under the driver)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            try:
                found[child] = (
                    (Path("/proc") / str(child) / "cmdline")
                    .read_bytes()
                    .decode(errors="replace")
                    .replace("\0", " ")
                )
            except OSError:
                continue
            stack.append(child)
    return found


def stop_service(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    log = tmp_path_factory.mktemp("service") / "serve.log"
    # A wait long enough that concurrent test requests share batches on a slow CI box; batch
    # buckets (the GPU set-up) so padded batches are proven to give the same answers.
    running = start_service(
        {
            "RECOGNIZE_MAX_BATCH_SIZE": "8",
            "RECOGNIZE_BATCH_WAIT_TIMEOUT_S": "0.05",
            "RECOGNIZE_BATCH_BUCKETS": "[1, 2, 4, 8]",
        },
        log,
    )
    print(f"\ncold start to ready: {running.cold_start_s:.1f}s")
    yield running
    stop_service(running.process)


@pytest.fixture()
def client(service: RunningService) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c
