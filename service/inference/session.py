"""One onnxruntime session for a model file, with the options every server here uses: the
car classifier's (``build_session``) and the vehicle gate's (``build_gate_session``).

Ray-free on purpose: the Classifier deployment builds its session with it, and so do the
benchmark's peer servers (a naive FastAPI server, Triton), so all run the model identically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnxruntime as ort
from pydantic import ConfigDict

from service.core.calibration import Calibration, parse_calibration
from service.core.errors import ModelContractError
from service.core.gate import GateMetadata, parse_gate_metadata
from service.core.modelfile import INPUT_NAME, OUTPUT_NAME, ModelMetadata, parse_metadata
from service.core.taxonomy import taxonomy_at
from service.settings import ClassifierOptions


def intra_op_threads_for(requested: int) -> int:
    """0 means every core of the node: Ray pins OMP_NUM_THREADS to the replica's num_cpus,
    which would leave onnxruntime on one thread of a 2-core box."""
    return requested or os.cpu_count() or 1


class ClassifierConfig(ClassifierOptions):
    """The classifier's ``user_config``: ``ClassifierOptions`` (declared once, in the settings),
    strict about unknown keys, and what the replica derives from them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def shapes_to_warm(self) -> tuple[int, ...]:
        """Every batch size the session will see."""
        if self.batch_buckets:
            return tuple(sorted(set(self.batch_buckets)))
        return self.warmup_batch_sizes or tuple(range(1, self.max_batch_size + 1))

    def padded_size(self, n: int) -> int:
        return min((b for b in self.batch_buckets if b >= n), default=n)

    def overlap_threads(self) -> int | None:
        """Intra-op threads for a batch that starts while another runs, on a CPU: the cores
        split between the batches that may run at once, so that they do not fight over them.
        None: no such session (one batch at a time, a GPU, or nothing to split)."""
        if self.concurrent_batches < 2 or not self.cpu_only:
            return None
        alone = intra_op_threads_for(self.intra_op_threads)
        shared = max(1, alone // self.concurrent_batches)
        return shared if shared < alone else None

    def session_key(self) -> tuple[Any, ...]:
        """What new onnxruntime sessions are needed for (buckets each have their own session);
        other batching changes need none."""
        return (
            self.model_path,
            self.providers,
            self.intra_op_threads,
            self.batch_buckets,
            self.overlap_threads(),
        )

    def gate_session_key(self) -> tuple[Any, ...]:
        """What new vehicle gate sessions are needed for (none while the gate is off)."""
        if not self.gate_enabled:
            return (False,)
        return (True, self.gate_model_path, *self.session_key()[1:])


def build_session(
    config: ClassifierConfig, *, memory_arena: bool = True
) -> tuple[ort.InferenceSession, ModelMetadata]:
    """Open the model, insisting on the providers asked for and on the metadata contract.
    ``memory_arena=False``: the CPU arena is off, so a run's buffers are freed after it."""
    path = Path(config.model_path).absolute()
    session = _open_session(path, config, memory_arena=memory_arena, setting="RECOGNIZE_MODEL_PATH")
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))
    metadata.check_against(taxonomy_at(config.taxonomy_path))
    _check_signature(session, metadata, path)
    model_calibration(session, source=str(path))  # a malformed one fails here, not a request
    return session, metadata


def build_gate_session(
    config: ClassifierConfig, *, memory_arena: bool = True
) -> tuple[ort.InferenceSession, GateMetadata]:
    """Open the vehicle gate (``config.gate_model_path``) as ``build_session`` opens the model,
    insisting on the gate's metadata contract (``service.core.gate``)."""
    path = Path(config.gate_model_path).absolute()
    session = _open_session(
        path, config, memory_arena=memory_arena, setting="RECOGNIZE_GATE_MODEL_PATH"
    )
    metadata = parse_gate_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))
    _check_signature(session, metadata, path)
    width = next(o.shape for o in session.get_outputs() if o.name == OUTPUT_NAME)[-1]
    if width != metadata.num_classes:
        raise ModelContractError(
            f"{path}: output '{OUTPUT_NAME}' has {width} classes, the gate's metadata says "
            f"{metadata.num_classes} (ImageNet-1k)"
        )
    return session, metadata


def _open_session(
    path: Path, config: ClassifierConfig, *, memory_arena: bool, setting: str
) -> ort.InferenceSession:
    """An onnxruntime session with the service's options, on exactly the providers asked for."""
    if not path.is_file():
        raise ModelContractError(f"model file {path} does not exist ({setting})")
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
    options.enable_cpu_mem_arena = memory_arena
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
    return session


def model_calibration(session: ort.InferenceSession, *, source: str) -> Calibration | None:
    """The calibration entry of the session's model file (`recognize calibrate`), if any."""
    return parse_calibration(session.get_modelmeta().custom_metadata_map, source=source)


def _check_signature(
    session: ort.InferenceSession, metadata: ModelMetadata | GateMetadata, path: Path
) -> None:
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


def run_batch(session: ort.InferenceSession, batch: Any) -> Any:
    """Logits [N, C] for a uint8 [N, H, W, 3] batch."""
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    return logits
