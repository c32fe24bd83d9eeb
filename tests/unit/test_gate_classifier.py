"""The vehicle gate inside the Classifier replica, without Ray or HTTP: the same stacked batch
through both models, the gate's sessions laid out like the classifier's, the gate switched on
and off live, and the refusal of a gate exported at another size. ~5 s on a quiet 2-core
box (four small exports), ~75 s when it is shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # exports the two small models

from service.core.errors import ModelContractError
from service.core.gate import vehicle_probabilities
from service.inference.classifier import Classifier, ClassifierConfig
from service.inference.session import build_gate_session
from service.modeltools.export import export_model
from service.modeltools.gate_export import export_gate
from tests.unit.test_classifier import _classify_at_once, reconfigure

SIZE = 64  # small enough to be quick; EfficientNet pools globally, so the gate runs at 64 px


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    classifier = folder / "convnext_atto_64.onnx"
    export_model(classifier, arch="convnext_atto", seed=0, input_size=SIZE)
    gate = folder / "vehicle_gate_64.onnx"
    export_gate(gate, input_size=SIZE)
    return classifier, gate


def config(models: tuple[Path, Path], **overrides: object) -> dict:  # type: ignore[type-arg]
    classifier, gate = models
    return ClassifierConfig.model_validate(
        {"model_path": str(classifier), "gate_model_path": str(gate), "intra_op_threads": 1,
         **overrides}
    ).model_dump()  # fmt: skip


def images(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_each_result_carries_the_gates_probability_of_its_own_image(
    models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(models, max_batch_size=4, batch_wait_timeout_s=0.05))
    assert classifier.ready()["gate"]["input_size"] == SIZE
    batch = images(6)
    results = _classify_at_once(classifier, batch, monkeypatch)
    assert max(r.batch_size for r in results) > 1  # shared batches
    session, meta = build_gate_session(ClassifierConfig(gate_model_path=models[1]))
    alone = vehicle_probabilities(session.run(None, {"image": batch})[0], meta.vehicle_indices)
    got = np.array([r.vehicle_probability for r in results])
    np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(got, 6))) == len(got)  # different images, different answers


def test_the_gate_switches_off_and_on_live_without_reloading_the_classifier(
    models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(models, max_batch_size=2))
    assert classifier._model is not None
    session, gate = classifier._model.session, classifier._model.gate
    assert gate is not None
    reconfigure(classifier, config(models, max_batch_size=2, gate_enabled=False))
    assert classifier._model.session is session and classifier._model.gate is None
    assert classifier.ready()["gate"] is None
    (result,) = _classify_at_once(classifier, images(1), monkeypatch)
    assert result.vehicle_probability is None
    reconfigure(classifier, config(models, max_batch_size=3))  # the gate back on
    gate_again = classifier._model.gate
    reconfigure(classifier, config(models, max_batch_size=2))  # batching only: same gate
    assert classifier._model.session is session and classifier._model.gate is gate_again
    assert gate_again is not None


def test_the_gate_gets_a_session_per_batch_bucket_like_the_classifier(
    models: tuple[Path, Path],
) -> None:
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(models, max_batch_size=4, batch_buckets=[1, 2, 4]))
    model = classifier._model
    assert model is not None and model.gate is not None
    assert sorted(model.gate.sessions) == [1, 2, 4]
    assert len({id(s) for s in model.gate.sessions.values()}) == 3
    assert not set(map(id, model.gate.sessions.values())) & set(map(id, model.sessions.values()))
    cpu_overlap = config(models, intra_op_threads=2, concurrent_batches=2)
    reconfigure(classifier, cpu_overlap)
    assert classifier._model.gate is not None
    assert classifier._model.gate.overlap_session is not None


def test_a_gate_of_another_size_is_refused_naming_both(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    gate_96 = tmp_path / "vehicle_gate_96.onnx"
    export_gate(gate_96, input_size=96)
    classifier = Classifier.func_or_class()
    with pytest.raises(ModelContractError, match=r"96 px.*64 px.*--input-size 64"):
        reconfigure(classifier, config((models[0], gate_96)))
