"""Raw onnxruntime timings: ``session.run`` on ready-made batches, in this process, with nothing
of the service around it (the ceiling that the benchmarks compare the service with).

Sessions come from the service's own ``service.inference.session.build_session`` (its options:
thread spinning off, HEURISTIC cuDNN search on CUDA), and each call is the service's
``run_batch``, so raw and served inference differ only by what the service adds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest._stats import percentile
from service.inference.session import run_batch


class WithGate:
    """A session and the vehicle gate's session run on the same batch, as the Classifier runs
    them when the gate is on: one ``run`` call times both (the model's outputs are returned)."""

    def __init__(self, session: Any, gate: Any) -> None:
        self.session = session
        self.gate = gate

    def run(self, outputs: Any, feeds: Any) -> Any:
        self.gate.run(None, feeds)
        return self.session.run(outputs, feeds)


@dataclass(frozen=True)
class BatchTiming:
    """The timed calls of one batch shape (milliseconds per ``session.run``, in call order)."""

    batch_size: int
    first_run_s: float  # the shape's first call: memory allocation, CUDA kernel planning
    calls_ms: Sequence[float]
    elapsed_s: float  # wall time of the timed calls together

    @property
    def images_per_s(self) -> float:
        """Throughput over the timed window."""
        return self.batch_size * len(self.calls_ms) / self.elapsed_s

    @property
    def images_per_s_at_median(self) -> float:
        """Throughput of a median call (robust to a few slow calls in a short window)."""
        return self.batch_size * 1000 / statistics.median(self.calls_ms)

    def percentile_ms(self, q: float) -> float | None:
        return percentile(sorted(self.calls_ms), q)


def time_batch(
    session: Any, batch: Any, *, seconds: float, min_calls: int = 3, warm_runs: int = 2
) -> BatchTiming:
    """Time ``session.run`` on ``batch`` for ``seconds`` (and at least ``min_calls`` calls, even
    when one call outlasts the window), after ``warm_runs`` untimed calls, the first of which is
    timed on its own: first runs of a shape allocate memory (and on CUDA plan kernels)."""
    started = time.perf_counter()
    run_batch(session, batch)
    first_run_s = time.perf_counter() - started
    for _ in range(warm_runs - 1):
        run_batch(session, batch)
    calls: list[float] = []
    began = time.perf_counter()
    while len(calls) < min_calls or time.perf_counter() - began < seconds:
        start = time.perf_counter()
        run_batch(session, batch)
        calls.append((time.perf_counter() - start) * 1000)
    return BatchTiming(len(batch), first_run_s, calls, time.perf_counter() - began)


def parallel_images_per_s(sessions: Sequence[Any], batch: Any, seconds: float) -> float:
    """images/s of several sessions running ``batch`` at once, one thread each, over one common
    window (onnxruntime releases the GIL while it runs)."""
    for session in sessions:
        run_batch(session, batch)
    counts = [0] * len(sessions)
    start = threading.Barrier(len(sessions) + 1)
    began = [0.0]

    def loop(i: int) -> None:
        start.wait()
        while time.perf_counter() - began[0] < seconds:
            run_batch(sessions[i], batch)
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    began[0] = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began[0]
    return len(batch) * sum(counts) / elapsed
