"""The vehicle gate in the real running service (Ray Serve app over HTTP, demo classifier, the
gate from `make gate`): real photos without a vehicle get manual_review with reason no_vehicle,
real vehicle photos do not, /v1/model describes the gate, and with the gate switched off the
response says vehicle: null. ~45 s on a quiet 2-core box (a second service, gate off, starts
here), ~2 min when it is shared."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator

import httpx
import pytest

from service.core.gate import default_vehicle_classes, vehicle_probabilities
from service.core.imaging import Limits, prepare_image
from service.inference.session import ClassifierConfig, build_gate_session, run_batch
from tests.integration.conftest import RunningService, start_service, stop_service
from tests.integration.test_api import EU_C_ESTATE, UNKNOWN_CODE
from tests.paths import GATE_MODEL_PATH
from tests.photos import photo

pytestmark = pytest.mark.integration

# Real photos (make data) of what an audit must not take for a car: a document, people, an
# animal, food, a building, a dog with a truck far behind it (decided: the subject must be the
# vehicle), a motorcycle (a vehicle, but no car, van, truck or bus).
NO_VEHICLE = (
    "opencv/sudoku.png",
    "darknet/person.jpg",
    "labelme/2011_000006.jpg",
    "opencv/baboon.jpg",
    "opencv/fruits.jpg",
    "opencv/building.jpg",
    "darknet/dog.jpg",
    "skimage/motorcycle_left.png",
)
VEHICLE = (
    "opencv/licenseplate_motion.jpg",
    "labelme/2011_000025.jpg",
    "opencv-doc/pexels_double_decker_bus.jpg",
    "tuxpaint/sedan.png",
    "tuxpaint/truck.png",
)


def recognize(client: httpx.Client, name: str, vin: str = EU_C_ESTATE) -> dict:  # type: ignore[type-arg]
    data = photo(name).read_bytes()
    kind = mimetypes.guess_type(name)[0]
    r = client.post("/recognize", files={"image": (name, data, kind)}, data={"vin": vin})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", NO_VEHICLE)
def test_a_photo_without_a_vehicle_goes_to_manual_review(client: httpx.Client, name: str) -> None:
    body = recognize(client, name)
    assert body["verdict"] == "manual_review"
    assert body["reasons"][0] == "no_vehicle"
    assert body["vehicle"]["present"] is False and body["vehicle"]["probability"] < 0.15
    assert body["prediction"]["class_id"]  # the classifier's view is still reported


@pytest.mark.parametrize("name", VEHICLE)
def test_a_vehicle_photo_passes_the_gate(client: httpx.Client, name: str) -> None:
    body = recognize(client, name)
    assert "no_vehicle" not in body["reasons"]
    assert body["vehicle"]["present"] is True and body["vehicle"]["probability"] >= 0.15


def test_the_service_scores_as_the_gate_does_alone(client: httpx.Client) -> None:
    """The service runs the gate on the very pixels it classifies: its answer equals the gate
    file's own on the photo resized the service's way (the demo model's bicubic 224 px)."""
    session, meta = build_gate_session(ClassifierConfig(gate_model_path=GATE_MODEL_PATH))
    for name in (NO_VEHICLE[0], VEHICLE[0]):
        pixels = prepare_image(
            photo(name).read_bytes(),
            size=224,
            interpolation="bicubic",
            limits=Limits(max_pixels=50_000_000, min_side=32),
        ).array
        alone = vehicle_probabilities(run_batch(session, pixels[None]), meta.vehicle_indices)
        served = recognize(client, name)["vehicle"]["probability"]
        assert served == pytest.approx(float(alone[0]), abs=1e-5)


def test_unknown_vin_and_no_vehicle_give_both_reasons(client: httpx.Client) -> None:
    body = recognize(client, "opencv/sudoku.png", vin=UNKNOWN_CODE)
    assert body["verdict"] == "manual_review"
    assert body["reasons"] == ["no_vehicle", "unknown_model_code"]


def test_the_model_endpoint_describes_the_gate(client: httpx.Client) -> None:
    gate = client.get("/v1/model").json()["gate"]
    assert (gate["arch"], gate["input_size"], gate["vehicle_threshold"]) == (
        "tf_efficientnet_lite0",
        224,
        0.15,
    )
    listed = [(c["index"], c["name"]) for c in gate["vehicle_classes"]]
    assert listed == [(c.index, c.name) for c in default_vehicle_classes().classes]
    assert gate["version"].startswith("imagenet1k-")


@pytest.fixture(scope="module")
def gate_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_service(
        {"RECOGNIZE_GATE_ENABLED": "false", "RECOGNIZE_MAX_BATCH_SIZE": "2"},
        tmp_path_factory.mktemp("gate-off") / "serve.log",
    )
    yield running
    stop_service(running.process)


def test_with_the_gate_off_the_classifier_alone_decides(gate_off: RunningService) -> None:
    with gate_off.client() as client:
        body = recognize(client, "opencv/sudoku.png")
        assert body["vehicle"] is None
        assert "no_vehicle" not in body["reasons"]
        assert client.get("/v1/model").json()["gate"] is None
