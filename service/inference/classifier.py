"""Classifier deployment: one onnxruntime session per replica, fed by dynamic batching.

Everything that decides how the model runs (file, providers, threads, batch size, wait timeout)
arrives through ``reconfigure(user_config)``, so the same code serves the CPU here and CUDA in
production, and batching can be retuned on a live deployment without a restart.

The vehicle gate (``service.core.gate``), when on, runs in the same replica on the same stacked
batch, right after the classifier and on sessions of its own laid out like the classifier's (one
per batch bucket, one for overlap): no extra hop, no second resize.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from ray import serve

from service.core.calibration import Calibration
from service.core.errors import ModelContractError, ModelNotReady
from service.core.gate import GateMetadata, vehicle_probabilities
from service.core.modelfile import ModelMetadata
from service.inference.session import (
    ClassifierConfig,
    build_gate_session,
    build_session,
    model_calibration,
    run_batch,
)
from service.metrics import ClassifierMetrics

__all__ = ["Classifier", "ClassifierConfig", "ClassifyResult", "build_session"]

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class _Pending:
    image: np.ndarray
    arrived: float


@dataclass(frozen=True)
class ClassifyResult:
    logits: np.ndarray  # float32 [C]
    batch_size: int
    queue_s: float
    inference_s: float  # the batch's onnxruntime calls: classifier and, when on, the gate
    vehicle_probability: float | None = None  # the gate's; None while the gate is off


SessionBuilder = Callable[..., tuple[ort.InferenceSession, Any]]


def _bucket_and_overlap_sessions(
    config: ClassifierConfig, main: ort.InferenceSession, build: SessionBuilder
) -> tuple[dict[int, ort.InferenceSession], ort.InferenceSession | None]:
    """Beside a model's main session: one session per batch bucket, one for overlap."""
    # The CUDA EP re-plans every cuDNN convolution whenever a session's input shape
    # changes (5-7 s for fp16 ConvNeXt-B on an H100, at every change, not only the
    # first): so each bucket gets a session of its own that only ever sees its shape.
    buckets = sorted(set(config.batch_buckets))
    sessions = {n: build(config)[0] for n in buckets[1:]}
    if buckets:
        sessions[buckets[0]] = main
    # A lone batch gets every core (latency at low load); batches that overlap get a
    # share each. One session per thread count: onnxruntime fixes it per session.
    # Measured on 2 cores, concurrency 16: 31-32 vs 26.5-28.9 req/s (2 threads per
    # batch). Without its own memory arena the second session holds ~270 MB less
    # (PSS 1641 vs 1909 MB), at the same req/s.
    overlap = config.overlap_threads()
    overlap_session = (
        None
        if overlap is None
        else build(config.model_copy(update={"intra_op_threads": overlap}), memory_arena=False)[0]
    )
    return sessions, overlap_session


@serve.deployment(name="Classifier")
class Classifier:
    def __init__(self) -> None:
        # Cheap on purpose: the session is built in reconfigure(), which Serve calls right after.
        self._session: ort.InferenceSession | None = None
        # With batch_buckets, one session per bucket size, each fed only batches of that size.
        self._sessions: dict[int, ort.InferenceSession] = {}
        # On a CPU with concurrent batches: the session for a batch that starts while another
        # runs, with the cores split between them (ClassifierConfig.overlap_threads).
        self._overlap_session: ort.InferenceSession | None = None
        self._running = 0  # batches in onnxruntime now; changed on the event loop only
        self._metadata: ModelMetadata | None = None
        self._calibration: Calibration | None = None
        self._config: ClassifierConfig | None = None
        # The vehicle gate's sessions, laid out like the classifier's; None while it is off.
        self._gate_session: ort.InferenceSession | None = None
        self._gate_sessions: dict[int, ort.InferenceSession] = {}
        self._gate_overlap_session: ort.InferenceSession | None = None
        self._gate_metadata: GateMetadata | None = None
        # session.run runs off the event loop, so health checks and the batch queue keep moving:
        # one thread per batch that may run at once (concurrent_batches), made in reconfigure().
        self._executor: ThreadPoolExecutor | None = None
        self._infer: Callable[[_Pending], Awaitable[ClassifyResult]] | None = None
        self._ready = False
        self._metrics = ClassifierMetrics()
        self._waiting: set[int] = set()  # ids of requests queued for a batch not yet started

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = ClassifierConfig.model_validate(user_config)
        model_changed = self._config is None or config.session_key() != self._config.session_key()
        if model_changed:
            self._ready = False
            self._metrics.ready(False)
            started = time.perf_counter()
            self._open_sessions(config)
            assert self._session is not None and self._metadata is not None
            self._metrics.model(
                arch=self._metadata.arch,
                version=self._metadata.version,
                input_size=self._metadata.input_size,
            )
            logger.info(
                "loaded %s (%s %s) on %s in %.1fs, %d session(s)",
                config.model_path,
                self._metadata.arch,
                self._metadata.version,
                self._session.get_providers()[0],
                time.perf_counter() - started,
                max(1, len(self._sessions)) + (self._overlap_session is not None),
            )
        gate_changed = (
            self._config is None or config.gate_session_key() != self._config.gate_session_key()
        )
        if model_changed or gate_changed:
            self._ready = False
            self._metrics.ready(False)
            self._open_gate_sessions(config)
        if self._config is None or config.concurrent_batches != self._config.concurrent_batches:
            self._start_batching(config)
        else:
            self._infer.set_max_batch_size(config.max_batch_size)  # type: ignore[union-attr]
            self._infer.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[union-attr]
        self._config = config
        self._warm_up(config.shapes_to_warm())
        self._ready = True
        self._metrics.ready(True)

    def _open_sessions(self, config: ClassifierConfig) -> None:
        """The replica's sessions: the main one, one per batch bucket, one for overlap."""
        self._session, self._metadata = build_session(config)
        self._calibration = model_calibration(self._session, source=str(config.model_path))
        self._sessions, self._overlap_session = _bucket_and_overlap_sessions(
            config, self._session, build_session
        )

    def _open_gate_sessions(self, config: ClassifierConfig) -> None:
        """The vehicle gate's sessions, or none while it is off. The gate gets the classifier's
        input as it is, so it must be exported at the classifier's input size."""
        assert self._metadata is not None
        self._gate_session, self._gate_sessions, self._gate_overlap_session = None, {}, None
        self._gate_metadata = None
        if not config.gate_enabled:
            logger.info("vehicle gate off (gate_enabled=false)")
            return
        session, metadata = build_gate_session(config)
        if metadata.input_size != self._metadata.input_size:
            raise ModelContractError(
                f"vehicle gate {config.gate_model_path} is exported at {metadata.input_size} px, "
                f"the classifier {config.model_path} at {self._metadata.input_size} px: export "
                f"a gate at its size (recognize export-gate --input-size "
                f"{self._metadata.input_size}) or switch the gate off (RECOGNIZE_GATE_ENABLED)"
            )
        self._gate_sessions, self._gate_overlap_session = _bucket_and_overlap_sessions(
            config, session, build_gate_session
        )
        self._gate_session, self._gate_metadata = session, metadata
        logger.info(
            "vehicle gate %s (%s %s) summing %d ImageNet classes",
            config.gate_model_path,
            metadata.arch,
            metadata.version,
            len(metadata.vehicle_classes),
        )

    def _start_batching(self, config: ClassifierConfig) -> None:
        """A batch queue and its threads for ``config.concurrent_batches`` batches at once.

        Serve fixes a batch queue's concurrency when it is made, so a change makes a new one;
        batches already formed on the old queue still run, on the new threads.
        """
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._executor = ThreadPoolExecutor(
            max_workers=config.concurrent_batches, thread_name_prefix="onnxruntime"
        )
        self._infer = serve.batch(
            max_batch_size=config.max_batch_size,
            batch_wait_timeout_s=config.batch_wait_timeout_s,
            max_concurrent_batches=config.concurrent_batches,
        )(self._run_batch)

    def _warm_up(self, batch_sizes: tuple[int, ...]) -> None:
        """Run every batch shape once on every serving thread before reporting ready.

        On the CUDA EP the first run of a batch shape took 5-8 s (fp16 ConvNeXt-B on an H100,
        cuDNN 9): so every shape runs before ready, in each executor thread that serves, and on
        GPUs the shapes are few (batch_buckets), each on its own session.
        """
        assert self._session is not None and self._metadata is not None
        assert self._executor is not None and self._config is not None
        size = self._metadata.input_size
        shapes = sorted(set(batch_sizes))
        threads = self._config.concurrent_batches
        # Each task waits until every thread holds one, so each thread warms every shape.
        everyone = threading.Barrier(threads)

        def warm_this_thread(first: bool) -> None:
            everyone.wait()
            for n in shapes:
                self._infer_batch(np.zeros((n, size, size, 3), dtype=np.uint8))
                # The overlap session is CPU-only, where nothing is per thread: once will do.
                if first and self._overlap_session is not None:
                    self._infer_batch(np.zeros((n, size, size, 3), dtype=np.uint8), True)

        started = time.perf_counter()
        for task in [self._executor.submit(warm_this_thread, i == 0) for i in range(threads)]:
            task.result()
        logger.info(
            "warmed up batch sizes %s on %d thread(s) in %.1fs",
            shapes,
            threads,
            time.perf_counter() - started,
        )

    def _infer_batch(
        self, batch: np.ndarray, overlapping: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The classifier's logits of a batch and the gate's vehicle probabilities (None while
        the gate is off), one after the other on this thread."""
        return self._run(batch, overlapping), self._run_gate(batch, overlapping)

    def _run(self, batch: np.ndarray, overlapping: bool = False) -> np.ndarray:
        """Logits of a batch; ``overlapping``: another batch runs meanwhile."""
        assert self._session is not None
        if overlapping and self._overlap_session is not None:
            return run_batch(self._overlap_session, batch)
        return run_batch(self._sessions.get(len(batch), self._session), batch)

    def _run_gate(self, batch: np.ndarray, overlapping: bool) -> np.ndarray | None:
        """The vehicle probability of every image of the batch, None while the gate is off."""
        if self._gate_session is None or self._gate_metadata is None:
            return None
        if overlapping and self._gate_overlap_session is not None:
            session = self._gate_overlap_session
        else:
            session = self._gate_sessions.get(len(batch), self._gate_session)
        return vehicle_probabilities(
            run_batch(session, batch), self._gate_metadata.vehicle_indices
        )

    def ready(self) -> dict[str, Any]:
        """The model's metadata, calibration and providers once loaded and warmed up; raises
        before."""
        if not self._ready or self._metadata is None or self._session is None:
            raise ModelNotReady("model is loading or warming up")
        return {
            "metadata": self._metadata.model_dump(mode="json"),
            "providers": self._session.get_providers(),
            "gate": None
            if self._gate_metadata is None
            else self._gate_metadata.model_dump(mode="json"),
            "calibration": (
                None if self._calibration is None else self._calibration.model_dump(mode="json")
            ),
        }

    async def classify(self, image: np.ndarray) -> ClassifyResult:
        """Logits for one uint8 [H, W, 3] image, computed in a batch with its neighbours."""
        if not self._ready or self._infer is None:
            raise ModelNotReady("model is loading or warming up")
        pending = _Pending(image, time.perf_counter())
        self._waiting.add(id(pending))
        self._metrics.waiting(len(self._waiting))
        try:
            return await self._infer(pending)
        finally:
            # Normally gone once its batch started; not if the request was cancelled first.
            self._waiting.discard(id(pending))
            self._metrics.waiting(len(self._waiting))

    async def _run_batch(self, items: list[_Pending]) -> list[ClassifyResult]:
        """One batch, formed by the batch queue of ``_start_batching``."""
        started = time.perf_counter()
        self._waiting.difference_update(id(item) for item in items)
        self._metrics.waiting(len(self._waiting))
        self._metrics.batch(len(items))
        assert self._config is not None
        n = len(items)
        batch = np.zeros((self._config.padded_size(n), *items[0].image.shape), dtype=np.uint8)
        np.stack([item.image for item in items], out=batch[:n])
        loop = asyncio.get_running_loop()
        overlapping = self._running > 0
        self._running += 1
        try:
            logits, vehicle = await loop.run_in_executor(
                self._executor, self._infer_batch, batch, overlapping
            )
        finally:
            self._running -= 1
        inference_s = time.perf_counter() - started
        return [
            ClassifyResult(
                logits[i],
                n,
                started - item.arrived,
                inference_s,
                None if vehicle is None else float(vehicle[i]),
            )
            for i, item in enumerate(items)
        ]
