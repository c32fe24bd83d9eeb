"""Classifier deployment: onnxruntime sessions per replica, fed by dynamic batching.

Everything that decides how the model runs (file, providers, threads, batch size, wait timeout)
arrives through ``reconfigure(user_config)``, so the same code serves the CPU here and CUDA in
production, and batching can be retuned on a live deployment without a restart. A new model
file is loaded and warmed up beside the one serving, then swapped in at once: each request is
answered by exactly one model, and the answer names it.

The vehicle gate (``service.core.gate``), when on, runs in the same replica on the same stacked
batch, right after the classifier and on sessions of its own laid out like the classifier's (one
per batch bucket, one for overlap): no extra hop, no second resize. It is part of the model that
serves, so a rollout swaps both at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnxruntime as ort
from ray import serve

from service.core.calibration import Calibration
from service.core.errors import ModelContractError, ModelNotReady
from service.core.gate import GateMetadata, vehicle_probabilities
from service.core.modelfile import ModelMetadata, model_classes
from service.core.taxonomy import taxonomy_at
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
    model_version: str  # the version of the model that computed these logits
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


@dataclass(frozen=True)
class _Gate:
    """The vehicle gate's sessions, laid out like the classifier's."""

    metadata: GateMetadata
    session: ort.InferenceSession
    sessions: dict[int, ort.InferenceSession]
    overlap_session: ort.InferenceSession | None

    def run(self, batch: np.ndarray, overlapping: bool) -> np.ndarray:
        """The vehicle probability of every image of the batch."""
        if overlapping and self.overlap_session is not None:
            session = self.overlap_session
        else:
            session = self.sessions.get(len(batch), self.session)
        return vehicle_probabilities(run_batch(session, batch), self.metadata.vehicle_indices)


@dataclass(frozen=True)
class _Model:
    """One loaded model with the threads that run it: a batch runs on one of these from start to
    end, so a model swapped in meanwhile never mixes into it."""

    config: ClassifierConfig
    metadata: ModelMetadata
    session: ort.InferenceSession
    # With batch_buckets, one session per bucket size, each fed only batches of that size.
    sessions: dict[int, ort.InferenceSession]
    # On a CPU with concurrent batches: the session for a batch that starts while another
    # runs, with the cores split between them (ClassifierConfig.overlap_threads).
    overlap_session: ort.InferenceSession | None
    # session.run runs off the event loop, so health checks and the batch queue keep moving:
    # one thread per batch that may run at once (concurrent_batches).
    executor: ThreadPoolExecutor
    calibration: Calibration | None  # the model file's (`recognize calibrate`)
    gate: _Gate | None  # None while the gate is off

    def run(
        self, batch: np.ndarray, overlapping: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits of a batch and the gate's vehicle probabilities (None while it is off), one
        after the other on this thread; ``overlapping``: another batch runs meanwhile."""
        if overlapping and self.overlap_session is not None:
            logits = run_batch(self.overlap_session, batch)
        else:
            logits = run_batch(self.sessions.get(len(batch), self.session), batch)
        return logits, None if self.gate is None else self.gate.run(batch, overlapping)


def _model_key(config: ClassifierConfig) -> tuple[Any, ...]:
    """What a new _Model (sessions and threads) is needed for; other changes reuse the one
    serving."""
    return (*config.session_key(), *config.gate_session_key(), config.concurrent_batches)


@serve.deployment(name="Classifier")
class Classifier:
    def __init__(self) -> None:
        # Cheap on purpose: the model is loaded in reconfigure(), which Serve calls right after.
        self._model: _Model | None = None
        self._running = 0  # batches in onnxruntime now; changed on the event loop only
        self._infer: Callable[[_Pending], Awaitable[ClassifyResult]] | None = None
        self._target: ClassifierConfig | None = None  # the newest user_config
        self._switch: asyncio.Task[None] | None = None  # a new model loading in the background
        self._metrics = ClassifierMetrics()
        self._waiting: set[int] = set()  # ids of requests queued for a batch not yet started

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply a ``user_config``. The first model is loaded before the replica reports ready;
        a new one later is loaded and warmed up in the background while the current one keeps
        answering, then replaces it in one step (``switched()`` waits for that).

        Serve takes a replica out of routing until its reconfigure returns (UPDATING is not
        routed, ray/serve/_private/deployment_state.py; ray-project/ray#54509): waiting here
        for a new model held every request for the whole load and warm-up, 6-16 s with the
        demo model on 2 busy cores, past a 10 s deadline (tests/cluster/test_rollout.py).
        """
        config = ClassifierConfig.model_validate(user_config)
        self._target = config
        current = self._model
        if current is None:
            self._serve(await asyncio.to_thread(self._load, config))
        elif _model_key(config) == _model_key(current.config):
            # Same sessions; a larger max_batch_size may bring shapes not warmed up yet.
            model = replace(current, config=config)
            await asyncio.to_thread(self._warm_up, model)
            self._serve(model)
        elif self._switch is None or self._switch.done():
            self._switch = asyncio.get_running_loop().create_task(self._switch_to(config))
        # else: the load under way picks up the newest target when it ends

    async def _switch_to(self, config: ClassifierConfig) -> None:
        """Load ``config``'s model (again, if the target moved on meanwhile), then serve it."""
        while True:
            try:
                model = await asyncio.to_thread(self._load, config)
            except Exception:
                assert self._model is not None
                logger.exception(
                    "could not load %s; still serving %s %s",
                    config.model_path,
                    self._model.metadata.arch,
                    self._model.metadata.version,
                )
                return
            target = self._target
            assert target is not None
            if _model_key(target) == _model_key(config):
                self._serve(replace(model, config=target))
                return
            model.executor.shutdown(wait=False)  # superseded while it loaded
            assert self._model is not None
            if _model_key(target) == _model_key(self._model.config):
                return  # rolled back to the model serving
            config = target

    async def switched(self) -> None:
        """Wait until a model being loaded in the background serves (or failed to load)."""
        if self._switch is not None:
            await self._switch

    def _serve(self, model: _Model) -> None:
        """From now on every batch runs on ``model`` (the swap); the old one's threads end
        once the batches already on them are done."""
        current = self._model
        config = model.config
        if (
            self._infer is None
            or current is None
            or (config.concurrent_batches != current.config.concurrent_batches)
        ):
            self._infer = self._batch_queue(config)
        else:
            self._infer.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]
            self._infer.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[attr-defined]
        self._model = model
        if current is not None and current.executor is not model.executor:
            current.executor.shutdown(wait=False)
            logger.info(
                "now serving %s %s (was %s)",
                model.metadata.arch,
                model.metadata.version,
                current.metadata.version,
            )
        self._metrics.model(
            arch=model.metadata.arch,
            version=model.metadata.version,
            input_size=model.metadata.input_size,
        )
        self._metrics.ready(True)

    def _load(self, config: ClassifierConfig) -> _Model:
        """A new model: the main session, one per batch bucket, one for overlap, the vehicle
        gate's likewise, its threads, every batch shape warmed up. A change of the gate alone
        keeps the classifier's sessions."""
        started = time.perf_counter()
        current = self._model
        if current is not None and current.config.session_key() == config.session_key():
            session, metadata = current.session, current.metadata
            sessions, overlap_session = current.sessions, current.overlap_session
            calibration = current.calibration
        else:
            session, metadata = build_session(config)
            calibration = model_calibration(session, source=str(config.model_path))
            sessions, overlap_session = _bucket_and_overlap_sessions(config, session, build_session)
        gate = self._load_gate(config, metadata)
        executor = ThreadPoolExecutor(
            max_workers=config.concurrent_batches, thread_name_prefix="onnxruntime"
        )
        model = _Model(
            config, metadata, session, sessions, overlap_session, executor, calibration, gate
        )
        try:
            self._warm_up(model)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        logger.info(
            "loaded %s (%s %s) on %s in %.1fs, %d session(s)",
            config.model_path,
            metadata.arch,
            metadata.version,
            session.get_providers()[0],
            time.perf_counter() - started,
            max(1, len(sessions)) + (overlap_session is not None),
        )
        return model

    @staticmethod
    def _load_gate(config: ClassifierConfig, metadata: ModelMetadata) -> _Gate | None:
        """The vehicle gate's sessions, or none while it is off. The gate gets the classifier's
        input as it is, so it must be exported at the classifier's input size."""
        if not config.gate_enabled:
            logger.info("vehicle gate off (gate_enabled=false)")
            return None
        session, gate = build_gate_session(config)
        if gate.input_size != metadata.input_size:
            raise ModelContractError(
                f"vehicle gate {config.gate_model_path} is exported at {gate.input_size} px, "
                f"the classifier {config.model_path} at {metadata.input_size} px: export "
                f"a gate at its size (recognize export-gate --input-size "
                f"{metadata.input_size}) or switch the gate off (RECOGNIZE_GATE_ENABLED)"
            )
        sessions, overlap_session = _bucket_and_overlap_sessions(
            config, session, build_gate_session
        )
        logger.info(
            "vehicle gate %s (%s %s) summing %d ImageNet classes",
            config.gate_model_path,
            gate.arch,
            gate.version,
            len(gate.vehicle_classes),
        )
        return _Gate(gate, session, sessions, overlap_session)

    def _batch_queue(
        self, config: ClassifierConfig
    ) -> Callable[[_Pending], Awaitable[ClassifyResult]]:
        """A batch queue for ``config.concurrent_batches`` batches at once.

        Serve fixes a batch queue's concurrency when it is made, so a change makes a new one;
        batches already formed on the old queue still run.
        """
        return serve.batch(
            max_batch_size=config.max_batch_size,
            batch_wait_timeout_s=config.batch_wait_timeout_s,
            max_concurrent_batches=config.concurrent_batches,
        )(self._run_batch)

    def _warm_up(self, model: _Model) -> None:
        """Run every batch shape once on every serving thread of ``model`` before it serves.

        On the CUDA EP the first run of a batch shape took 5-8 s (fp16 ConvNeXt-B on an H100,
        cuDNN 9): so every shape runs before ready, in each executor thread that serves, and on
        GPUs the shapes are few (batch_buckets), each on its own session.
        """
        size = model.metadata.input_size
        shapes = model.config.shapes_to_warm()
        threads = model.config.concurrent_batches
        # Each task waits until every thread holds one, so each thread warms every shape.
        everyone = threading.Barrier(threads)

        def warm_this_thread(first: bool) -> None:
            everyone.wait()
            for n in shapes:
                self._run(np.zeros((n, size, size, 3), dtype=np.uint8), model=model)
                # The overlap session is CPU-only, where nothing is per thread: once will do.
                if first and model.overlap_session is not None:
                    self._run(
                        np.zeros((n, size, size, 3), dtype=np.uint8), overlapping=True, model=model
                    )

        started = time.perf_counter()
        for task in [model.executor.submit(warm_this_thread, i == 0) for i in range(threads)]:
            task.result()
        logger.info(
            "warmed up batch sizes %s on %d thread(s) in %.1fs",
            list(shapes),
            threads,
            time.perf_counter() - started,
        )

    def _run(
        self, batch: np.ndarray, overlapping: bool = False, model: _Model | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and vehicle probabilities of a batch on ``model`` (default: the one serving
        now)."""
        model = model or self._model
        assert model is not None
        return model.run(batch, overlapping)

    def ready(self) -> dict[str, Any]:
        """The serving model's metadata, calibration, vehicle gate and providers once loaded
        and warmed up; raises before."""
        model = self._model
        if model is None:
            raise ModelNotReady("model is loading or warming up")
        return {
            "metadata": model.metadata.model_dump(mode="json"),
            "providers": model.session.get_providers(),
            "gate": None if model.gate is None else model.gate.metadata.model_dump(mode="json"),
            # The classes in output order from the taxonomy this replica checked the model
            # against (taxonomy_path travels in the user_config, not in the ingress's args).
            "classes": [
                c.model_dump(mode="json")
                for c in model_classes(model.metadata, taxonomy_at(model.config.taxonomy_path))
            ],
            "calibration": (
                None if model.calibration is None else model.calibration.model_dump(mode="json")
            ),
            # What an ingress may gather for one classify_many call (gather_in_ingress).
            "batching": {
                "max_batch_size": model.config.max_batch_size,
                "batch_wait_timeout_s": model.config.batch_wait_timeout_s,
            },
        }

    async def classify(self, image: np.ndarray) -> ClassifyResult:
        """Logits for one uint8 [H, W, 3] image, computed in a batch with its neighbours."""
        if self._model is None or self._infer is None:
            raise ModelNotReady("model is loading or warming up")
        _check_input(image, self._model)
        pending = _Pending(image, time.perf_counter())
        self._waiting.add(id(pending))
        self._metrics.waiting(len(self._waiting))
        try:
            return await self._infer(pending)
        finally:
            # Normally gone once its batch started; not if the request was cancelled first.
            self._waiting.discard(id(pending))
            self._metrics.waiting(len(self._waiting))

    async def classify_many(self, images: np.ndarray) -> list[ClassifyResult]:
        """Logits for a uint8 [N, H, W, 3] stack an ingress gathered (gather_in_ingress): run
        past this replica's own batch queue, in batches of at most max_batch_size (an ingress
        may still gather for a larger one that a new user_config has lowered)."""
        model = self._model
        if model is None or self._infer is None:
            raise ModelNotReady("model is loading or warming up")
        if images.ndim != 4 or not len(images):
            raise ValueError(f"expected images [N, H, W, 3], got shape {images.shape}")
        arrived = time.perf_counter()
        pending = [_Pending(image, arrived) for image in images]
        size = model.config.max_batch_size
        results: list[ClassifyResult] = []
        for start in range(0, len(pending), size):
            results += await self._run_batch(pending[start : start + size])
        return results

    async def _run_batch(self, items: list[_Pending]) -> list[ClassifyResult]:
        """One batch, formed by the batch queue of ``_batch_queue``, on the model serving now."""
        started = time.perf_counter()
        self._waiting.difference_update(id(item) for item in items)
        self._metrics.waiting(len(self._waiting))
        self._metrics.batch(len(items))
        model = self._model
        assert model is not None
        for item in items:  # queued before a swap to a model of another input size
            _check_input(item.image, model)
        n = len(items)
        batch = np.zeros((model.config.padded_size(n), *items[0].image.shape), dtype=np.uint8)
        np.stack([item.image for item in items], out=batch[:n])
        loop = asyncio.get_running_loop()
        overlapping = self._running > 0
        self._running += 1
        try:
            # Submitted in the same step as `model` was read: a swap cannot come in between
            # and shut these threads down first.
            logits, vehicle = await loop.run_in_executor(
                model.executor, self._run, batch, overlapping, model
            )
        finally:
            self._running -= 1
        inference_s = time.perf_counter() - started
        version = model.metadata.version
        return [
            ClassifyResult(
                logits[i],
                n,
                started - item.arrived,
                inference_s,
                version,
                None if vehicle is None else float(vehicle[i]),
            )
            for i, item in enumerate(items)
        ]


def _check_input(image: np.ndarray, model: _Model) -> None:
    size = model.metadata.input_size
    if image.shape != (size, size, 3):
        # Only while a model of another input size replaces the one the ingress prepared for.
        raise ModelNotReady(
            f"the model now takes {size}x{size} images (got {image.shape[1]}x{image.shape[0]}); "
            "retry"
        )
