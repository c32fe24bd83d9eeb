"""The model as the benchmark's peer servers run it: one onnxruntime session and the verdict.

``open_session`` is the service's own ``service.session.build_session`` (Ray-free, so the naive
server loads no Ray and the Triton venv needs none): the same options and model contract.
``PeerModel`` adds the service's preprocessing and verdict with the settings' limits and
thresholds, so each peer only adds its own serving around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.imaging import Limits, prepare_image
from service.modelfile import ModelMetadata, class_infos
from service.session import ClassifierConfig, build_session, run_batch
from service.settings import Settings
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


@dataclass(frozen=True)
class PeerModel:
    """One session plus the service's preprocessing and verdict, as a peer server runs them."""

    session: ort.InferenceSession
    metadata: ModelMetadata
    classes: list[ClassInfo]
    limits: Limits
    thresholds: Thresholds

    @classmethod
    def open(cls, model_path: Path | str, intra_op_threads: int = 0) -> PeerModel:
        settings = Settings()
        session, metadata = open_session(model_path, intra_op_threads)
        return cls(
            session=session,
            metadata=metadata,
            classes=class_infos(metadata),
            limits=Limits(max_pixels=settings.max_image_pixels, min_side=settings.min_image_side),
            thresholds=Thresholds(
                match=settings.match_threshold, mismatch=settings.mismatch_threshold
            ),
        )

    def prepare(self, data: bytes) -> np.ndarray:
        """Photo bytes → uint8 [size, size, 3], the service's way."""
        return prepare_image(
            data,
            size=self.metadata.input_size,
            interpolation=self.metadata.interpolation,
            limits=self.limits,
        ).array

    def run(self, batch: np.ndarray) -> np.ndarray:
        return run_batch(self.session, batch)

    def warm_up(self, batch_sizes: range | list[int]) -> None:
        """Run each batch shape once: its first run allocates."""
        size = self.metadata.input_size
        for n in batch_sizes:
            self.run(np.zeros((n, size, size, 3), dtype=np.uint8))

    def verdict(self, logits: np.ndarray, vin: VinDecode) -> dict[str, Any]:
        return verdict(logits, self.classes, vin, self.thresholds)
