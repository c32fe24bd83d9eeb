"""Classifier deployment: one onnxruntime session per replica, fed by dynamic batching.

Everything that decides how the model runs (file, providers, threads, batch size, wait timeout)
arrives through ``reconfigure(user_config)``, so the same code serves the CPU here and CUDA in
production, and batching can be retuned on a live deployment without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve

from service.errors import ModelContractError, ModelNotReady
from service.metrics import ClassifierMetrics
from service.modelfile import INPUT_NAME, OUTPUT_NAME, ModelMetadata, parse_metadata
from service.settings import intra_op_threads_for, resolve_model_path
from service.taxonomy import default_taxonomy

logger = logging.getLogger("ray.serve")


class ClassifierConfig(BaseModel):
    """The classifier's ``user_config``: changeable on a live deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = Field(0, ge=0, description="0 = every core of the node")
    max_batch_size: int = Field(8, ge=1, le=256)
    batch_wait_timeout_s: float = Field(0.005, ge=0.0, le=1.0)
    warmup_batch_sizes: tuple[int, ...] = ()
    batch_buckets: tuple[int, ...] = Field(
        (),
        description="pad each batch up to the smallest of these sizes; empty = run as formed",
    )

    @model_validator(mode="after")
    def _buckets_cover_batches(self) -> ClassifierConfig:
        if self.batch_buckets and max(self.batch_buckets) < self.max_batch_size:
            raise ValueError(
                f"batch_buckets {list(self.batch_buckets)} must reach max_batch_size "
                f"{self.max_batch_size}"
            )
        return self

    def shapes_to_warm(self) -> tuple[int, ...]:
        """Every batch size the session will see."""
        if self.batch_buckets:
            return tuple(sorted(set(self.batch_buckets)))
        return self.warmup_batch_sizes or tuple(range(1, self.max_batch_size + 1))

    def padded_size(self, n: int) -> int:
        return min((b for b in self.batch_buckets if b >= n), default=n)

    def session_key(self) -> tuple[Any, ...]:
        """What a new onnxruntime session is needed for; batching changes need none."""
        return (self.model_path, self.providers, self.intra_op_threads)


@dataclass(frozen=True)
class _Pending:
    image: np.ndarray
    arrived: float


@dataclass(frozen=True)
class ClassifyResult:
    logits: np.ndarray  # float32 [C]
    batch_size: int
    queue_s: float
    inference_s: float


def build_session(config: ClassifierConfig) -> tuple[ort.InferenceSession, ModelMetadata]:
    """Open the model, insisting on the providers asked for and on the metadata contract."""
    path = resolve_model_path(config.model_path)
    if not path.is_file():
        raise ModelContractError(f"model file {path} does not exist (RECOGNIZE_MODEL_PATH)")
    wants_cuda = "CUDAExecutionProvider" in config.providers
    if wants_cuda and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # load the pip-installed CUDA/cuDNN libraries before the session
    available = ort.get_available_providers()
    missing = [p for p in config.providers if p not in available]
    if missing:
        raise ModelContractError(
            f"onnxruntime providers {missing} requested but not available (have {available}); "
            "refusing to fall back to the CPU silently"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads_for(config.intra_op_threads)
    options.inter_op_num_threads = 1
    # Spinning threads burn whole cores between requests (3x the CPU for the same throughput).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers: list[Any] = []
    for name in config.providers:
        if name == "CUDAExecutionProvider":
            # HEURISTIC was as fast as EXHAUSTIVE on every batch size measured, and does not
            # re-run a cuDNN search for each new batch shape.
            providers.append((name, {"cudnn_conv_algo_search": "HEURISTIC"}))
        else:
            providers.append(name)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:
        raise ModelContractError(
            f"onnxruntime could not load {path} (corrupt or not an ONNX model?): {exc}"
        ) from exc
    if wants_cuda and session.get_providers()[0] != "CUDAExecutionProvider":
        raise ModelContractError(
            f"CUDA requested but the session runs on {session.get_providers()}"
        )
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))
    metadata.check_against(default_taxonomy())
    _check_signature(session, metadata, path)
    return session, metadata


def _check_signature(session: ort.InferenceSession, metadata: ModelMetadata, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
        raise ModelContractError(
            f"{path} must have one input '{INPUT_NAME}' and an output '{OUTPUT_NAME}' "
            f"(has inputs {[i.name for i in inputs]}, outputs {[o.name for o in outputs]})"
        )
    if inputs[0].type != "tensor(uint8)":
        raise ModelContractError(f"{path}: input '{INPUT_NAME}' must be uint8, is {inputs[0].type}")
    shape = inputs[0].shape
    size = metadata.input_size
    if len(shape) != 4 or list(shape[1:]) != [size, size, 3]:
        raise ModelContractError(f"{path}: input shape {shape} is not [N, {size}, {size}, 3]")


@serve.deployment(name="Classifier")
class Classifier:
    def __init__(self) -> None:
        # Cheap on purpose: the session is built in reconfigure(), which Serve calls right after.
        self._session: ort.InferenceSession | None = None
        self._metadata: ModelMetadata | None = None
        self._config: ClassifierConfig | None = None
        # One thread runs session.run off the event loop, so health checks and the batch queue
        # keep moving; onnxruntime parallelises inside the call with its own intra-op threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        self._ready = False
        self._metrics = ClassifierMetrics()
        self._waiting: set[int] = set()  # ids of requests queued for a batch not yet started

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = ClassifierConfig.model_validate(user_config)
        if self._config is None or config.session_key() != self._config.session_key():
            self._ready = False
            self._metrics.ready(False)
            started = time.perf_counter()
            self._session, self._metadata = build_session(config)
            self._metrics.model(
                arch=self._metadata.arch,
                version=self._metadata.version,
                input_size=self._metadata.input_size,
            )
            logger.info(
                "loaded %s (%s %s) on %s in %.1fs",
                config.model_path,
                self._metadata.arch,
                self._metadata.version,
                self._session.get_providers()[0],
                time.perf_counter() - started,
            )
        self._infer.set_max_batch_size(config.max_batch_size)
        self._infer.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        self._config = config
        self._warm_up(config.shapes_to_warm())
        self._ready = True
        self._metrics.ready(True)

    def _warm_up(self, batch_sizes: tuple[int, ...]) -> None:
        """Run every batch shape once before reporting ready.

        On the CUDA EP the first run of a new batch shape took ~8 s (fp16 ConvNeXt-B on an H100,
        cuDNN 9), and a shape warmed in one thread was not always warm in another: so warm up
        in the executor thread that serves, and on GPUs keep the shapes few (batch_buckets).
        """
        assert self._session is not None and self._metadata is not None
        size = self._metadata.input_size
        started = time.perf_counter()
        for n in sorted(set(batch_sizes)):
            batch = np.zeros((n, size, size, 3), dtype=np.uint8)
            self._executor.submit(self._run, batch).result()
        logger.info(
            "warmed up batch sizes %s in %.1fs",
            sorted(set(batch_sizes)),
            time.perf_counter() - started,
        )

    def _run(self, batch: np.ndarray) -> np.ndarray:
        assert self._session is not None
        (logits,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return logits

    def ready(self) -> dict[str, Any]:
        """The model's metadata and providers once loaded and warmed up; raises before."""
        if not self._ready or self._metadata is None or self._session is None:
            raise ModelNotReady("model is loading or warming up")
        return {
            "metadata": self._metadata.model_dump(mode="json"),
            "providers": self._session.get_providers(),
        }

    async def classify(self, image: np.ndarray) -> ClassifyResult:
        """Logits for one uint8 [H, W, 3] image, computed in a batch with its neighbours."""
        if not self._ready:
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

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _infer(self, items: list[_Pending]) -> list[ClassifyResult]:
        started = time.perf_counter()
        self._waiting.difference_update(id(item) for item in items)
        self._metrics.waiting(len(self._waiting))
        self._metrics.batch(len(items))
        assert self._config is not None
        n = len(items)
        batch = np.zeros((self._config.padded_size(n), *items[0].image.shape), dtype=np.uint8)
        np.stack([item.image for item in items], out=batch[:n])
        loop = asyncio.get_running_loop()
        logits = await loop.run_in_executor(self._executor, self._run, batch)
        inference_s = time.perf_counter() - started
        return [
            ClassifyResult(logits[i], n, started - item.arrived, inference_s)
            for i, item in enumerate(items)
        ]
