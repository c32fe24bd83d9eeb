"""The vehicle gate's pure parts (service/core/gate.py) and its model-file contract: the list of
summed ImageNet classes, the vehicle probability, and the refusals between the two kinds of
model file (a gate is never served as the classifier, nor a classifier as the gate)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.core.errors import ModelContractError
from service.core.gate import (
    IMAGENET_CLASSES,
    GateMetadata,
    default_vehicle_classes,
    load_vehicle_classes,
    parse_gate_metadata,
    vehicle_probabilities,
)
from service.core.modelfile import GATE_METADATA_KEY, METADATA_KEY
from service.inference.session import ClassifierConfig, build_gate_session, build_session
from tests.paths import DEMO_MODEL_PATH, GATE_MODEL_PATH

VEHICLES = default_vehicle_classes()
INDICES = [c.index for c in VEHICLES.classes]


def test_every_vehicle_class_is_imagenets_class_at_that_index() -> None:
    timm_data = pytest.importorskip("timm.data")  # the models extra: ImageNet's class list
    info = timm_data.ImageNetInfo()
    for c in VEHICLES.classes:
        assert (info.index_to_label_name(c.index), info.index_to_description(c.index)) == (
            c.synset,
            c.name,
        ), c


def test_cars_vans_trucks_buses_and_car_parts_count_other_vehicles_do_not() -> None:
    names = {c.name.split(",")[0] for c in VEHICLES.classes}
    assert {"sports car", "beach wagon", "convertible", "limousine", "jeep", "cab"} <= names
    assert {"minivan", "moving van", "pickup", "trailer truck", "school bus", "minibus"} <= names
    assert {"grille", "car wheel", "car mirror"} <= names
    assert not names & {"passenger car", "streetcar", "moped", "motor scooter", "tractor",
                        "tank", "golfcart", "seat belt", "bicycle-built-for-two"}  # fmt: skip


def test_a_list_with_an_index_twice_is_refused(tmp_path: Path) -> None:
    twice = {"version": "x", "classes": [VEHICLES.classes[0].model_dump()] * 2}
    path = tmp_path / "vehicles.yaml"
    path.write_text(json.dumps(twice))  # JSON is YAML
    with pytest.raises(ValueError, match="index twice"):
        load_vehicle_classes(path)


def test_vehicle_probability_is_the_softmax_mass_of_the_vehicle_classes() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, IMAGENET_CLASSES)).astype(np.float32)
    logits[1, INDICES[0]] = 30.0  # a photo that is a car beyond doubt
    logits[2, :] = 0.0  # a photo that says nothing: every class as likely
    got = vehicle_probabilities(logits, INDICES)
    z = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    expected = (z[:, INDICES].sum(axis=1)) / z.sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[1] == pytest.approx(1.0) and got[1] <= 1.0
    assert got[2] == pytest.approx(len(INDICES) / IMAGENET_CLASSES)


def metadata_map(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def built(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} missing: run `make model gate` (make test does)")
    return path


def test_the_built_gate_describes_itself() -> None:
    meta = parse_gate_metadata(metadata_map(built(GATE_MODEL_PATH)), source="gate")
    assert isinstance(meta, GateMetadata) and meta.kind == "vehicle_gate"
    assert (meta.arch, meta.input_size, meta.num_classes) == ("tf_efficientnet_lite0", 224, 1000)
    assert meta.vehicle_classes == VEHICLES.classes  # the list, written into the file
    assert METADATA_KEY not in metadata_map(GATE_MODEL_PATH)


def test_a_gate_file_is_refused_as_the_classifier() -> None:
    with pytest.raises(ModelContractError, match=r"is a vehicle gate.*RECOGNIZE_GATE_MODEL_PATH"):
        build_session(ClassifierConfig(model_path=built(GATE_MODEL_PATH)))


def test_a_classifier_file_is_refused_as_the_gate() -> None:
    config = ClassifierConfig(gate_model_path=built(DEMO_MODEL_PATH))
    with pytest.raises(ModelContractError, match=r"is a car classifier.*RECOGNIZE_MODEL_PATH"):
        build_gate_session(config)


def test_a_file_with_neither_entry_or_a_broken_one_is_refused() -> None:
    with pytest.raises(ModelContractError, match="no 'recognize_gate' metadata"):
        parse_gate_metadata({}, source="bare.onnx")
    broken = json.loads(metadata_map(built(GATE_MODEL_PATH))[GATE_METADATA_KEY])
    broken["vehicle_classes"][0]["index"] = 1000
    with pytest.raises(ModelContractError, match="invalid 'recognize_gate' metadata"):
        parse_gate_metadata({GATE_METADATA_KEY: json.dumps(broken)}, source="broken.onnx")


def test_a_missing_gate_file_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match=r"does not exist.*RECOGNIZE_GATE_MODEL_PATH"):
        build_gate_session(ClassifierConfig(gate_model_path=tmp_path / "nope.onnx"))
