"""The model as the benchmark's peer servers run it: one onnxruntime session and the verdict.

``open_session`` is the CPU twin of ``service.classifier.build_session``: the same
``SessionOptions`` (graph optimisation, intra-op threads, no thread spinning) and the same model
contract, without importing Ray, which the naive server would otherwise load for nothing and the
Triton venv does not have. ``tests/loadtest/test_bench.py`` checks that the options agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.modelfile import INPUT_NAME, OUTPUT_NAME, ModelMetadata, parse_metadata
from service.settings import intra_op_threads_for, resolve_model_path
from service.taxonomy import default_taxonomy
from service.verdict import ClassInfo, Thresholds, decide
from service.vin import VinDecode


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """What build_session sets, option for option."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads_for(intra_op_threads)
    options.inter_op_num_threads = 1
    # Spinning threads burn whole cores between requests; every server compared turns it off.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def open_session(
    model_path: Path | str, intra_op_threads: int = 0
) -> tuple[ort.InferenceSession, ModelMetadata]:
    path = resolve_model_path(model_path)
    session = ort.InferenceSession(
        str(path),
        sess_options=session_options(intra_op_threads),
        providers=["CPUExecutionProvider"],
    )
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map, source=str(path))
    metadata.check_against(default_taxonomy())
    return session, metadata


def run_batch(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    """Logits [N, C] for a uint8 [N, H, W, 3] batch."""
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    return logits


def class_infos(metadata: ModelMetadata) -> list[ClassInfo]:
    """The model's outputs with the taxonomy's switches, as the ingress builds them."""
    taxonomy = default_taxonomy().by_id()
    return [
        ClassInfo(c.id, c.label, c.parent, taxonomy[c.id].enabled, taxonomy[c.id].match_threshold)
        for c in metadata.classes
    ]


def verdict(
    logits: np.ndarray, classes: list[ClassInfo], vin: VinDecode, thresholds: Thresholds
) -> dict[str, Any]:
    """The part of the service's answer the benchmark reads, computed the service's way."""
    decision = decide(
        logits,
        classes,
        expected_parent=vin.expected_parent,
        vin_reasons=vin.reasons,
        thresholds=thresholds,
        top_k=3,
    )
    return {
        "verdict": decision.verdict.value,
        "reasons": decision.reasons,
        "label": decision.top.label,
        "confidence": decision.top.probability,
        "parent_probability": min(1.0, decision.parent_probability),
    }
