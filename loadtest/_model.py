"""The model as the benchmark's peer servers run it: one onnxruntime session and the verdict.

``open_session`` is the service's own ``service.session.build_session`` (Ray-free, so the naive
server loads no Ray and the Triton venv needs none): the same options and model contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.modelfile import ModelMetadata
from service.session import ClassifierConfig, build_session
from service.verdict import ClassInfo, Thresholds, decide
from service.vin import VinDecode


def open_session(
    model_path: Path | str, intra_op_threads: int = 0
) -> tuple[ort.InferenceSession, ModelMetadata]:
    """The service's own session (service.session.build_session) on the CPU."""
    return build_session(
        ClassifierConfig(model_path=str(model_path), intra_op_threads=intra_op_threads)
    )


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
