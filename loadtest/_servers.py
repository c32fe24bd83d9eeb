"""Starting and stopping the benchmark's servers as subprocesses, on free loopback ports.

Each server runs in its own session (process group), so that stopping it reaches every process
it started: SIGTERM to the server, then SIGKILL to whatever of its tree is still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtest._stats import process_tree


class ServerFailed(RuntimeError):
    """The server exited or did not become ready; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()[19]


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

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, wait, then SIGKILL the survivors of the tree (checked by pid + start time)."""
        tree = [(pid, _start_time(pid)) for pid in process_tree(self.pid)]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid, started in tree:
            if started is not None and _start_time(pid) == started:
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
