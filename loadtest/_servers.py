"""The benchmarks' servers as subprocesses on free loopback ports: ``recognize serve`` and the
peers (the naive server, Triton), started, waited for, measured and stopped.

Each server runs in its own session (process group), so that stopping it reaches every process
it started: SIGTERM to the server, then SIGKILL to whatever of its tree is still alive. What a
running server costs (memory and CPU of its whole process tree) is read from /proc
(``loadtest/_stats.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtest._stats import (
    Memory,
    process_argv,
    process_memory,
    process_tree,
    start_time,
    tree_cpu_seconds,
    tree_memory,
)

REPO = Path(__file__).resolve().parent.parent


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    cold_start_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def memory(self) -> Memory:
        """RSS and PSS of the whole process tree."""
        return tree_memory(self.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds the tree's live processes have used so far."""
        return tree_cpu_seconds(self.pid)

    def idle_cpu_percent(self, seconds: float) -> float:
        """CPU the whole tree uses while nobody calls it, as % of the machine (all cores)."""
        before, started = self.cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        used = self.cpu_seconds() - before
        return round(100 * used / ((time.perf_counter() - started) * (os.cpu_count() or 1)), 2)

    def process_memories(self, min_mb: int = 100) -> list[dict[str, Any]]:
        """RSS/PSS of each process of the tree over ``min_mb``, named by its command line."""
        rows = []
        for pid in process_tree(self.pid):
            memory, argv = process_memory(pid), process_argv(pid)
            if memory is not None and argv is not None and memory[0] >= min_mb * 1024:
                rows.append(
                    {
                        "pid": pid,
                        "name": " ".join(argv).strip()[:70],
                        "rss_mb": memory[0] // 1024,
                        "pss_mb": memory[1] // 1024,
                    }
                )
        return sorted(rows, key=lambda r: -r["rss_mb"])

    def ray_gcs_address(self) -> str:
        """The GCS address of the Ray cluster this server started, from its raylet's arguments
        (a Ray driver joins that cluster by it: "auto" takes the newest on the machine)."""
        for pid in process_tree(self.pid):
            argv = process_argv(pid)
            if argv and argv[0].endswith("/raylet"):
                for arg in argv:
                    if arg.startswith("--gcs-address="):
                        return arg.split("=", 1)[1]
        raise RuntimeError(f"no raylet with a --gcs-address under process {self.pid}")

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, wait, then SIGKILL the survivors of the tree (checked by pid + start time)."""
        tree = [(pid, start_time(pid)) for pid in process_tree(self.pid)]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid, started in tree:
            if started is not None and start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def start_server(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 240.0,
) -> ServerProcess:
    """Start ``command`` and wait until GET ready_path answers 200; cold start = spawn to ready."""
    base_url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = ServerProcess(name, process, base_url, log)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerFailed(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if client.get(ready_path).status_code == 200:
                    server.cold_start_s = time.perf_counter() - started
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    server.stop()
    raise ServerFailed(f"{name} not ready after {timeout_s:.0f}s:\n{server.log_tail()}")


def start_service(
    model: Path, log: Path, env: dict[str, str] | None = None, *, timeout_s: float = 240.0
) -> ServerProcess:
    """``recognize serve`` with ``model``, ready; ``env`` adds RECOGNIZE_* settings."""
    port = free_port()
    return start_server(
        "service",
        [sys.executable, "-m", "service.cli", "serve"],
        port=port,
        ready_path="/readyz",
        log=log,
        cwd=REPO,
        timeout_s=timeout_s,
        env={
            # A local benchmark: no API keys (their check costs microseconds).
            "RECOGNIZE_AUTH_DISABLED": "true",
            **(env or {}),
            "RECOGNIZE_PORT": str(port),
            # Its own metrics port too, so a bench beside a running service cannot collide.
            "RECOGNIZE_METRICS_PORT": str(free_port()),
            "RECOGNIZE_MODEL_PATH": str(model),
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        },
    )


def start_naive(model: Path, log: Path, intra_op_threads: int) -> ServerProcess:
    """The naive peer (``loadtest/naive_server.py``), ready."""
    port = free_port()
    return start_server(
        "naive",
        [
            *(sys.executable, "-m", "loadtest.naive_server"),
            *("--port", str(port), "--model", str(model), "--threads", str(intra_op_threads)),
        ],
        port=port,
        ready_path="/readyz",
        log=log,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
    )


def _libdir(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()


def start_triton(
    python: Path,
    model: Path,
    log: Path,
    *,
    intra_op_threads: int,
    max_batch_size: int,
    batch_wait_ms: float,
) -> ServerProcess:
    """The Triton peer (``loadtest/triton_server.py``) with the Python of its own venv, ready."""
    port = free_port()
    return start_server(
        "triton",
        [
            *(str(python), "-m", "loadtest.triton_server"),
            *("--port", str(port), "--model", str(model), "--threads", str(intra_op_threads)),
            *("--max-batch-size", str(max_batch_size), "--batch-wait-ms", str(batch_wait_ms)),
        ],
        port=port,
        ready_path="/v2/models/recognize/ready",
        log=log,
        cwd=REPO,
        env={
            "PYTHONPATH": str(REPO),
            # Triton's Python backend must load this Python's libpython, not the system's.
            "LD_LIBRARY_PATH": ":".join(
                p for p in (_libdir(python), os.environ.get("LD_LIBRARY_PATH", "")) if p
            ),
        },
    )
