"""The benchmarks' closed-loop load generator: N concurrent clients, each sending its next request
as soon as the last one is answered, for a bounded time and a bounded number of requests, in
this process or spread over several.

What a request is comes from a ``Target``: HTTP uploads (``loadtest/_httpload.py``) or calls
through a Ray Serve handle (``loadtest/gpu_bench.py``). Throughput counts the answers that
arrive inside the measured window; latency percentiles cover the requests sent inside it. The
window opens after a warm-up that lasts until every client has had an answer (a slow server's
queue has then filled and turned over once), so a cell at high concurrency measures the steady
state, not the start.

One process drives the clients unless told otherwise: it shares the machine with the server it
measures, and its CPU per request is reported (``generator_cpu_ms_per_request``). Whether one
process kept up is measured, not guessed: ``generator_busy`` is the busiest load process's CPU
over the time its clients ran, so a cell whose generator was the bottleneck says so (close to
1.0) instead of passing off the client's limit as the server's. Then ``processes`` spreads the
clients over several processes that share one window (shared counters, a common start once
every process has connected: a Ray driver takes seconds to join its cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from loadtest._stats import percentile

# Every process of a cell connects (a Ray driver joins its cluster in a few seconds) before the
# common clock starts; this bounds how long that may take.
CONNECT_TIMEOUT_S = 180.0
BUSY_WARNING = 0.9  # a load process this busy may have held the rate back


@dataclass(frozen=True)
class Answer:
    """One request's outcome: an error, or what the answer said about how it was served."""

    error: str | None = None
    error_kind: str | None = None  # groups errors: "HTTP 503", "TimeoutError", ...
    batch_size: int = 0
    stages_ms: Mapping[str, float] = field(default_factory=dict)  # the server's own timings

    @classmethod
    def failed(cls, kind: str, message: str) -> Answer:
        return cls(error=f"{kind}: {message}", error_kind=kind)


class Client(Protocol):
    """One client's connection: sends the n-th request and reads its answer."""

    async def send(self, n: int) -> Answer: ...

    def close(self) -> None: ...


class Target(Protocol):
    """Where the load goes; pickled into each load process when there are several."""

    async def open(self) -> Callable[[], Client]:
        """Once per load process, before the clock starts: what makes each client."""
        ...


@dataclass
class CellResult:
    concurrency: int
    seconds: float
    requests: int = 0  # sent inside the measured window
    completed: int = 0  # answered inside the measured window
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # of the requests sent in the window
    batch_sizes: list[int] = field(default_factory=list)
    stage_ms_sums: Counter[str] = field(default_factory=Counter)  # over the latencies' requests
    first_error: str | None = None
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    warmup_s: float | None = None  # how long the warm-up lasted; None: the window never opened
    sent: int = 0  # every request, warm-up included
    generator_cpu_s: float = 0.0  # the load processes' CPU over the whole cell
    generator_busy: list[float] = field(default_factory=list)  # per process: CPU / wall time

    def merge(self, other: CellResult) -> None:
        """Add another load process's share of the same cell."""
        self.requests += other.requests
        self.completed += other.completed
        self.errors += other.errors
        self.latencies_ms += other.latencies_ms
        self.batch_sizes += other.batch_sizes
        self.stage_ms_sums.update(other.stage_ms_sums)
        self.first_error = self.first_error or other.first_error
        self.errors_by_kind.update(other.errors_by_kind)
        self.sent += other.sent
        self.generator_cpu_s += other.generator_cpu_s
        self.generator_busy += other.generator_busy

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        ok = len(self.latencies_ms)
        return {
            "concurrency": self.concurrency,
            "warmup_s": None if self.warmup_s is None else round(self.warmup_s, 2),
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "ok": ok,
            "errors": self.errors,
            "errors_by_kind": dict(self.errors_by_kind),
            "throughput_rps": round(self.completed / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": percentile(ordered, 50),
            "p90_ms": percentile(ordered, 90),
            "p99_ms": percentile(ordered, 99),
            "mean_batch": (
                round(sum(self.batch_sizes) / len(self.batch_sizes), 2)
                if self.batch_sizes
                else None
            ),
            "stage_ms_mean": {k: round(v / ok, 2) for k, v in sorted(self.stage_ms_sums.items())},
            "first_error": self.first_error,
            # The load generator shares the machine with the server it measures.
            "generator_cpu_ms_per_request": (
                round(1000 * self.generator_cpu_s / self.sent, 2) if self.sent else None
            ),
            "generator_processes": len(self.generator_busy),
            "generator_busy": round(max(self.generator_busy), 2) if self.generator_busy else None,
        }


class _Window:
    """The measured window, shared by every load process of a cell: it opens once the warm-up
    has lasted ``warmup_s`` and every client has had an answer (so the server's queue has filled
    and turned over once, however slow it is), or after ``max_warmup_s`` at the latest, and
    lasts ``duration_s``. Times are ``time.monotonic()``, one clock for every process here."""

    def __init__(
        self,
        context: Any,
        concurrency: int,
        warmup_s: float,
        duration_s: float,
        max_warmup_s: float,
    ) -> None:
        self.concurrency = concurrency
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.max_warmup_s = max(warmup_s, max_warmup_s)
        self._answered = context.Value("i", 0)
        self._begin = context.Value("d", math.inf)
        self._start = context.Value("d", math.inf)

    @property
    def begin(self) -> float:
        """When the first clients started."""
        return float(self._begin.value)

    def began(self, now: float) -> None:
        """A process's clients start now."""
        with self._begin.get_lock():
            self._begin.value = min(self._begin.value, now)

    @property
    def start(self) -> float:
        return float(self._start.value)

    @property
    def end(self) -> float:
        return self.start + self.duration_s

    def answered(self) -> None:
        """A client has had its first answer."""
        with self._answered.get_lock():
            self._answered.value += 1

    def tick(self, now: float) -> None:
        if self._start.value != math.inf:
            return
        waited = now - self.begin
        warm = self._answered.value >= self.concurrency and waited >= self.warmup_s
        if warm or waited >= self.max_warmup_s:
            with self._start.get_lock():
                if self._start.value == math.inf:
                    self._start.value = now


@dataclass
class _Share:
    """One load process's part of a cell: ``concurrency`` of its clients, request numbers
    ``index`` mod ``processes`` (distinct request ids and payloads across processes)."""

    target: Target
    concurrency: int
    window: _Window
    max_requests: int
    index: int = 0
    processes: int = 1


def _at_once() -> None:
    """No other process to wait for."""


async def _drive(share: _Share, ready: Callable[[], None]) -> CellResult:
    """This process's clients, started once ``ready`` returns (every process has connected)."""
    window = share.window
    make_client = await share.target.open()
    await asyncio.to_thread(ready)
    cpu_before, began = os.times(), time.monotonic()
    window.began(began)
    result = CellResult(share.concurrency, window.duration_s)
    sent = 0

    async def one_client() -> None:
        nonlocal sent
        client = make_client()
        first = True
        try:
            while True:
                started = time.monotonic()
                window.tick(started)
                if started >= window.end or sent >= share.max_requests:
                    return
                n, sent = share.index + share.processes * sent, sent + 1
                answer = await client.send(n)
                ended = time.monotonic()
                if first:
                    first = False
                    window.answered()
                in_window = started >= window.start
                if in_window:
                    result.requests += 1
                if answer.error is not None:
                    result.errors += 1
                    result.errors_by_kind[answer.error_kind or "error"] += 1
                    result.first_error = result.first_error or answer.error
                    continue
                if window.start <= ended <= window.end:
                    result.completed += 1
                if in_window:
                    result.latencies_ms.append((ended - started) * 1000)
                    result.batch_sizes.append(answer.batch_size)
                    result.stage_ms_sums.update(answer.stages_ms)
        finally:
            client.close()

    await asyncio.gather(*(one_client() for _ in range(share.concurrency)))
    result.sent = sent
    # This process's CPU while its clients ran (warm-up included, connecting not), and how
    # much of one core that was.
    cpu_after, wall = os.times(), time.monotonic() - began
    result.generator_cpu_s = (cpu_after.user + cpu_after.system) - (
        cpu_before.user + cpu_before.system
    )
    result.generator_busy = [result.generator_cpu_s / wall if wall > 0 else 0.0]
    return result


def _load_process(share: _Share, barrier: Any, results: Any) -> None:
    try:
        result = asyncio.run(_drive(share, lambda: barrier.wait(CONNECT_TIMEOUT_S)))
        results.put((share.index, result, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put((share.index, None, f"{type(exc).__name__}: {exc}"))


def shares(concurrency: int, processes: int) -> list[int]:
    """Clients per load process: as even as it goes, no process without clients."""
    procs = max(1, min(processes, concurrency))
    return [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]


def _watch(window: _Window, probe: contextlib.AbstractContextManager[Any], done: Any) -> None:
    """Hold ``probe`` open over the measured window (it measures what happens meanwhile)."""
    while window.start == math.inf:
        if done.wait(0.005):
            return
    with probe:
        done.wait(max(0.0, window.end - time.monotonic()))


def run_cell(
    target: Target,
    concurrency: int,
    *,
    warmup_s: float,
    duration_s: float,
    max_requests: int = 100_000,
    max_warmup_s: float = 60.0,
    processes: int | None = None,
    probe: contextlib.AbstractContextManager[Any] | None = None,
) -> CellResult:
    """Load ``target`` with ``concurrency`` clients: warm-up, then a measured window. Bounded:
    the warm-up lasts at most ``max_warmup_s``, no request starts after the window, and at
    most ``max_requests`` are sent. The clients run in this process, or with ``processes`` in
    that many load processes of their own (spawned, so ``target`` must pickle; never more
    than ``concurrency``). ``probe``, a context manager, is held open over the measured
    window."""
    context = mp.get_context("spawn")
    window = _Window(context, concurrency, warmup_s, duration_s, max_warmup_s)
    done = threading.Event()
    watched = probe or contextlib.nullcontext()
    watcher = threading.Thread(target=_watch, args=(window, watched, done))
    watcher.start()
    try:
        if processes is None:
            share = _Share(target, concurrency, window, max_requests)
            result = asyncio.run(_drive(share, _at_once))
        else:
            split = shares(concurrency, processes)
            result = _run_processes(context, target, split, window, max_requests)
    finally:
        done.set()
        watcher.join()
    result.concurrency = concurrency
    if window.start != math.inf:
        result.warmup_s = window.start - window.begin
    return result


def _run_processes(
    context: Any, target: Target, split: list[int], window: _Window, max_requests: int
) -> CellResult:
    """The cell over ``len(split)`` load processes, their results merged."""
    barrier = context.Barrier(len(split))  # every process connected: the clients start
    results = context.Queue()
    per_process = math.ceil(max_requests / len(split))
    workers = [
        context.Process(
            target=_load_process,
            args=(_Share(target, n, window, per_process, i, len(split)), barrier, results),
            daemon=True,
        )
        for i, n in enumerate(split)
    ]
    for worker in workers:
        worker.start()
    merged: CellResult | None = None
    try:
        deadline = time.monotonic() + (
            CONNECT_TIMEOUT_S + window.max_warmup_s + window.duration_s + 180.0
        )
        failures: list[str] = []
        reported: set[int] = set()
        silent_since = math.inf
        while len(reported) < len(workers):
            try:
                index, result, error = results.get(timeout=1.0)
            except queue.Empty:
                # A process that died without a word (killed, crashed) would be waited for
                # until the deadline otherwise; its last words may still be in the pipe.
                silent = [
                    i for i, w in enumerate(workers) if i not in reported and not w.is_alive()
                ]
                silent_since = min(silent_since, time.monotonic()) if silent else math.inf
                if time.monotonic() - silent_since > 3.0 or time.monotonic() > deadline:
                    failures.append(f"load processes {silent or 'all'} gave no result")
                    break
                continue
            reported.add(index)
            if error is not None:
                failures.append(error)
            elif merged is None:
                merged = result
            else:
                merged.merge(result)
        if failures or merged is None:
            raise RuntimeError(f"load processes failed: {failures}")
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    return merged
