"""A model file run the service's way, in one process: decode and resize, onnxruntime, verdict.

Ray-free on purpose: the benchmark's peer servers (a naive FastAPI server, Triton) serve with
it, and offline tools that must judge photos exactly as the service does use it too. The
Classifier deployment batches its own calls but uses the same session and verdict code. With a
gate model it also runs the vehicle gate on the same batch, as the Classifier does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.core.calibration import DecisionRule
from service.core.gate import GateMetadata, vehicle_probabilities
from service.core.imaging import Limits, prepare_image
from service.core.modelfile import ModelMetadata, model_classes
from service.core.reasons import Reason
from service.core.taxonomy import VehicleClass, taxonomy_at
from service.core.verdict import Decision, decide
from service.core.vin import VinDecode
from service.inference.session import (
    ClassifierConfig,
    build_gate_session,
    build_session,
    model_calibration,
    run_batch,
)
from service.settings import Settings


@dataclass(frozen=True)
class Predictor:
    """One session plus the service's preprocessing and verdict."""

    session: ort.InferenceSession
    metadata: ModelMetadata
    classes: list[VehicleClass]
    limits: Limits
    rule: DecisionRule  # the model's calibration (if any) with the settings' overrides
    gate_session: ort.InferenceSession | None = None
    gate_metadata: GateMetadata | None = None

    @classmethod
    def open(
        cls,
        model_path: Path | str,
        intra_op_threads: int = 0,
        settings: Settings | None = None,
        gate_model_path: Path | str | None = None,
        taxonomy_path: Path | str | None = None,
    ) -> Predictor:
        """The model (and the vehicle gate, given its file) on the CPU with the service's
        session options; limits, threshold overrides and taxonomy from ``settings`` (default:
        this process's environment), the taxonomy from ``taxonomy_path`` if given."""
        settings = settings or Settings()
        taxonomy = Path(taxonomy_path) if taxonomy_path is not None else settings.taxonomy_path
        config = ClassifierConfig(
            model_path=Path(model_path),
            intra_op_threads=intra_op_threads,
            taxonomy_path=taxonomy,
            gate_enabled=gate_model_path is not None,
            gate_model_path=Path(gate_model_path or settings.gate_model_path),
        )
        session, metadata = build_session(config)
        gate_session, gate_metadata = (
            build_gate_session(config) if config.gate_enabled else (None, None)
        )
        return cls(
            session=session,
            metadata=metadata,
            classes=model_classes(metadata, taxonomy_at(taxonomy)),
            limits=settings.limits(),
            rule=settings.decision_rule(model_calibration(session, source=str(model_path))),
            gate_session=gate_session,
            gate_metadata=gate_metadata,
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
        """Logits [N, C] for a uint8 [N, size, size, 3] batch."""
        return run_batch(self.session, batch)

    def vehicle_probabilities(self, batch: np.ndarray) -> np.ndarray | None:
        """The gate's vehicle probability [N] of the same batch; None without a gate."""
        if self.gate_session is None or self.gate_metadata is None:
            return None
        logits = run_batch(self.gate_session, batch)
        return vehicle_probabilities(logits, self.gate_metadata.vehicle_indices)

    def warm_up(self, batch_sizes: range | list[int]) -> None:
        """Run each batch shape once: its first run allocates."""
        size = self.metadata.input_size
        for n in batch_sizes:
            batch = np.zeros((n, size, size, 3), dtype=np.uint8)
            self.run(batch)
            self.vehicle_probabilities(batch)

    def decide(
        self,
        logits: np.ndarray,
        vin: VinDecode,
        top_k: int = 3,
        vehicle_probability: float | None = None,
    ) -> Decision:
        """The verdict for one photo's logits (and the gate's vehicle probability) against its
        VIN, the service's way."""
        return self.decide_parent(
            logits, vin.expected_parent, vin.reasons, top_k, vehicle_probability
        )

    def decide_parent(
        self,
        logits: np.ndarray,
        expected_parent: str | None,
        vin_reasons: Sequence[Reason] = (),
        top_k: int = 3,
        vehicle_probability: float | None = None,
    ) -> Decision:
        """The verdict against a VIN that names ``expected_parent`` (evaluation, calibration)."""
        return decide(
            logits,
            self.classes,
            expected_parent=expected_parent,
            vin_reasons=vin_reasons,
            thresholds=self.rule.thresholds,
            top_k=top_k,
            vehicle_probability=vehicle_probability,
            temperature=self.rule.temperature,
        )
