"""The HTTP contract of the real running service (Ray Serve app, demo model, over HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from loadtest import photos as f
from service.core.taxonomy import default_taxonomy
from service.core.vin import check_digit
from tests.photos import photo

pytestmark = pytest.mark.integration

EU_C_ESTATE = "WDD2052041F123456"  # Baumuster 205.204: C-Class Estate S205 (EU layout)
UNKNOWN_CODE = "WDD9992041F123456"  # well-formed Mercedes FIN, series 999 unknown
NOT_MERCEDES = "VF1RFB00X56123456"  # a Renault WMI
OLD_E_CLASS = "WDB1240301A123456"  # an E-Class W124: a generation the taxonomy has no class for


def na_vin(prefix8: str, rest8: str) -> str:
    """Complete a North-American VIN with its check digit."""
    draft = prefix8 + "0" + rest8
    return prefix8 + check_digit(draft) + rest8


NA_GLE = na_vin("4JGFB4KB", "LA123456")  # 4JG FB: GLE-Class V167, model year 2020 (L)


def post(
    client: httpx.Client, image: bytes | None, vin: str | None, **extra: object
) -> httpx.Response:
    files = {"image": ("car.jpg", image, "image/jpeg")} if image is not None else None
    data: dict[str, object] = {"vin": vin} if vin is not None else {}
    data.update(extra)
    return client.post("/recognize", files=files, data=data)


UNCALIBRATED = {
    "calibrated": False,
    "id": None,
    "temperature": 1.0,
    "match_threshold": 0.8,
    "mismatch_threshold": 0.8,
    "overrides": [],
}


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_model_metadata_is_served(client: httpx.Client) -> None:
    body = client.get("/v1/model").json()
    assert body["arch"] == "convnext_tiny"
    assert body["input_size"] == 224
    assert body["providers"][0] == "CPUExecutionProvider"
    taxonomy = default_taxonomy()
    assert [c["id"] for c in body["classes"]] == [c.id for c in taxonomy.classes]
    assert set(body["parents"]) == set(taxonomy.parents)
    by_id = {c["id"]: c for c in body["classes"]}
    assert by_id["c_class_estate_2014_2021"]["parent"] == "C-Class"
    assert by_id["gle_class_suv_coupe_2015_2019"]["enabled"] is False
    # The demo model has no calibration: the default thresholds, and it says so.
    assert body["calibration"] == {
        **UNCALIBRATED, "certificate": None,
    }
    assert (body["match_threshold"], body["mismatch_threshold"]) == (0.8, 0.8)


def test_recognize_contract(client: httpx.Client) -> None:
    r = post(client, f.jpeg(), EU_C_ESTATE, top_k="5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-request-id"] == body["request_id"]
    assert body["verdict"] in ("match", "mismatch", "manual_review")
    assert isinstance(body["reasons"], list)
    vin = body["vin"]
    assert (vin["layout"], vin["expected_parent"], vin["model_year"], vin["check_digit_valid"]) == (
        "eu",
        "C-Class",
        None,
        None,
    )
    pred = body["prediction"]
    assert len(pred["top_k"]) == 5
    assert pred["top_k"][0]["class_id"] == pred["class_id"]
    assert pred["confidence"] == pytest.approx(pred["top_k"][0]["probability"])
    probs = [c["probability"] for c in pred["top_k"]]
    assert probs == sorted(probs, reverse=True)
    labels = {c.id: c for c in default_taxonomy().classes}
    assert pred["label"] == labels[pred["class_id"]].label
    assert pred["parent"] == labels[pred["class_id"]].parent
    # The verdict follows the thresholds on the expected parent's probability.
    if body["verdict"] == "match":
        assert pred["parent_probability"] >= 0.8 and body["parent_match"] is True
    else:
        assert pred["parent_probability"] < 0.9
    assert body["parent_match"] in (True, False)
    assert body["model"] == {
        "name": body["model"]["name"],
        "arch": "convnext_tiny",
        "version": body["model"]["version"],
        "input_size": 224,
    }
    assert body["calibration"] == UNCALIBRATED
    assert body["batch_size"] >= 1
    # The vehicle gate is on by default; a synthetic photo shows no vehicle.
    assert set(body["vehicle"]) == {"probability", "present"}
    assert body["vehicle"]["present"] is False and body["reasons"][0] == "no_vehicle"
    lat = body["latency_ms"]
    assert set(lat) == {"decode", "preprocess", "queue", "inference", "total"}
    assert all(v >= 0 for v in lat.values())
    assert lat["total"] >= lat["inference"] > 0


def test_default_top_k_is_three(client: httpx.Client) -> None:
    assert len(post(client, f.png(), EU_C_ESTATE).json()["prediction"]["top_k"]) == 3


def test_client_request_id_is_kept(client: httpx.Client) -> None:
    r = client.post(
        "/recognize",
        files={"image": ("a.jpg", f.jpeg(), "image/jpeg")},
        data={"vin": EU_C_ESTATE},
        headers={"X-Request-ID": "audit-42.7"},
    )
    assert r.headers["x-request-id"] == "audit-42.7" and r.json()["request_id"] == "audit-42.7"
    err = client.post("/recognize", data={"vin": "short"}, headers={"X-Request-ID": "audit-43"})
    assert err.headers["x-request-id"] == "audit-43"


def test_north_american_vin(client: httpx.Client) -> None:
    body = post(client, f.webp(), NA_GLE).json()
    assert body["vin"]["layout"] == "na"
    assert body["vin"]["model_year"] == 2020
    assert body["vin"]["check_digit_valid"] is True
    assert body["vin"]["expected_parent"] == "GLE-Class"


@pytest.mark.parametrize(
    ("vin", "reason", "series"),
    [
        (UNKNOWN_CODE, "unknown_model_code", None),
        (NOT_MERCEDES, "vin_not_mercedes", None),
        (OLD_E_CLASS, "generation_not_supported", "124"),
    ],
)
def test_unknown_parent_goes_to_manual_review(
    client: httpx.Client, vin: str, reason: str, series: str | None
) -> None:
    # A real car photo, so that the VIN alone sends it to review (a synthetic photo would be
    # stopped by the vehicle gate first: reasons [no_vehicle, <the VIN's reason>]).
    body = post(client, photo("opencv/licenseplate_motion.jpg").read_bytes(), vin).json()
    assert body["vehicle"]["present"] is True
    assert body["verdict"] == "manual_review"
    assert body["reasons"] == [reason]
    assert body["parent_match"] is None
    assert body["vin"]["expected_parent"] is None
    generation = body["vin"]["generation"]
    assert (generation and generation["series"]) == series


def test_concurrent_requests_batch_and_match_sequential_results(client: httpx.Client) -> None:
    images = [f.jpeg(400 + 10 * i, 600, seed=i) for i in range(12)]
    sequential = [post(client, img, EU_C_ESTATE).json() for img in images]
    with (
        ThreadPoolExecutor(max_workers=12) as pool,
        httpx.Client(base_url=str(client.base_url), timeout=120, headers=client.headers) as c2,
    ):
        concurrent = list(pool.map(lambda img: post(c2, img, EU_C_ESTATE).json(), images))
    for seq, con in zip(sequential, concurrent, strict=True):
        assert con["prediction"]["class_id"] == seq["prediction"]["class_id"]
        assert con["prediction"]["confidence"] == pytest.approx(
            seq["prediction"]["confidence"], abs=1e-4
        )
        assert con["verdict"] == seq["verdict"]
        # The vehicle gate runs on the same padded batches: the same answer as alone.
        assert con["vehicle"]["probability"] == pytest.approx(
            seq["vehicle"]["probability"], abs=1e-5
        )
    assert max(r["batch_size"] for r in concurrent) > 1, [r["batch_size"] for r in concurrent]
    # different photos, different outputs: the model is really looking at the pixels
    assert len({round(r["prediction"]["confidence"], 6) for r in sequential}) > 1


def big_bomb_png() -> bytes:
    return f.encode(Image.new("L", (20000, 20000)), "PNG")


ERROR_ROWS = [
    # (name, files, data, status, code, field)
    ("missing image", None, {"vin": EU_C_ESTATE}, 422, "invalid_request", "image"),
    ("missing vin", "jpeg", {}, 422, "invalid_request", "vin"),
    ("top_k zero", "jpeg", {"vin": EU_C_ESTATE, "top_k": "0"}, 422, "invalid_request", "top_k"),
    ("top_k eleven", "jpeg", {"vin": EU_C_ESTATE, "top_k": "11"}, 422, "invalid_request", "top_k"),
    ("top_k text", "jpeg", {"vin": EU_C_ESTATE, "top_k": "many"}, 422, "invalid_request", "top_k"),
    ("vin too short", "jpeg", {"vin": "WDD2052041F12345"}, 422, "invalid_vin", "vin"),
    ("vin with O", "jpeg", {"vin": "WDD2O52041F123456"}, 422, "invalid_vin", "vin"),
    ("vin empty", "jpeg", {"vin": ""}, 422, "invalid_request", "vin"),  # empty = missing
    (
        "na check digit",
        "jpeg",
        {"vin": NA_GLE[:8] + ("1" if NA_GLE[8] != "1" else "2") + NA_GLE[9:]},
        422,
        "invalid_vin",
        "vin",
    ),
    ("text file", b"just some text", {"vin": EU_C_ESTATE}, 422, "invalid_image", "image"),
    ("zero bytes", b"", {"vin": EU_C_ESTATE}, 422, "invalid_image", "image"),
    ("truncated jpeg", "truncated", {"vin": EU_C_ESTATE}, 422, "invalid_image", "image"),
    ("gif", "gif", {"vin": EU_C_ESTATE}, 415, "unsupported_media_type", "image"),
    ("tiff", "tiff", {"vin": EU_C_ESTATE}, 415, "unsupported_media_type", "image"),
    ("too small", "tiny", {"vin": EU_C_ESTATE}, 422, "image_too_small", "image"),
    ("pixel bomb", "bomb", {"vin": EU_C_ESTATE}, 413, "image_too_large", "image"),
    ("over 20 MB", "huge", {"vin": EU_C_ESTATE}, 413, "payload_too_large", "image"),
]


def make_upload(kind: object) -> bytes | None:
    if kind is None or isinstance(kind, bytes):
        return kind
    return {
        "jpeg": lambda: f.jpeg(),
        "truncated": lambda: f.jpeg()[:3000],
        "gif": lambda: f.encode(f.photo_like(64, 64), "GIF"),
        "tiff": lambda: f.encode(f.photo_like(64, 64), "TIFF"),
        "tiny": lambda: f.png(8, 8),
        "bomb": big_bomb_png,
        "huge": lambda: f.jpeg(64, 64) + b"\0" * (21 * 1024 * 1024),
    }[str(kind)]()


@pytest.mark.parametrize(
    ("name", "upload", "data", "status", "code", "field"),
    ERROR_ROWS,
    ids=[row[0] for row in ERROR_ROWS],
)
def test_error_contract(
    client: httpx.Client,
    name: str,
    upload: object,
    data: dict[str, str],
    status: int,
    code: str,
    field: str,
) -> None:
    r = post(
        client,
        make_upload(upload),
        data.get("vin"),
        **{k: v for k, v in data.items() if k != "vin"},
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["field"]) == (code, field)
    assert err["message"] and len(err["message"]) > 10
    # and the service keeps serving
    assert post(client, f.jpeg(200, 300), EU_C_ESTATE).status_code == 200


def test_error_messages_name_the_problem(client: httpx.Client) -> None:
    msg = post(client, f.jpeg(), "WDD2052041F12345").json()["error"]["message"]
    assert "17" in msg and "16" in msg
    msg = post(client, f.png(8, 8), EU_C_ESTATE).json()["error"]["message"]
    assert "8x8" in msg


def test_unknown_route_and_method_are_json(client: httpx.Client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/recognize")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_openapi_document(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert "/recognize" in doc["paths"]
    assert client.get("/docs").status_code == 200


def test_api_key_is_required_and_names_the_tenant(service) -> None:  # type: ignore[no-untyped-def]
    assert service.api_key, "the test service runs with API keys on"
    with httpx.Client(base_url=service.base_url, timeout=60) as anonymous:
        for headers in (
            {},
            {"Authorization": "Bearer rk_not-a-key"},
            {"Authorization": f"Basic {service.api_key}"},
        ):
            r = anonymous.post(
                "/recognize",
                files={"image": ("a.jpg", f.jpeg(), "image/jpeg")},
                data={"vin": EU_C_ESTATE},
                headers=headers,
            )
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/v1/model").status_code == 401
        # open without a key: liveness, readiness and the API document
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        # X-API-Key works as well as Bearer
        r = anonymous.post(
            "/recognize",
            files={"image": ("a.jpg", f.jpeg(), "image/jpeg")},
            data={"vin": EU_C_ESTATE},
            headers={"X-API-Key": service.api_key},
        )
        assert r.status_code == 200, r.text


def test_structured_log_line_names_tenant_and_masks_the_vin(client: httpx.Client) -> None:
    import glob
    import json
    import time
    import uuid

    request_id = f"logtest-{uuid.uuid4().hex}"
    vin = "WDD2052041F987654"
    r = client.post(
        "/recognize",
        files={"image": ("a.jpg", f.jpeg(), "image/jpeg")},
        data={"vin": vin},
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 200
    lines: list[dict] = []
    deadline = time.monotonic() + 20
    while not lines and time.monotonic() < deadline:
        for path in glob.glob("/tmp/ray/session_*/logs/serve/replica_recognize_Ingress_*.log"):
            with open(path, encoding="utf-8", errors="replace") as log:
                for line in log:
                    if request_id in line:
                        record = json.loads(line)  # JSON log encoding: one object per line
                        if record.get("message") == "request":
                            lines.append(record)
                        assert vin not in line, "the full VIN must never reach the logs"
        time.sleep(0.5)
    assert lines, "no structured request line found in the ingress replica's log"
    record = lines[0]
    assert record["request_id"] == request_id
    assert record["tenant"] == "test-portal"
    assert record["status"] == 200 and record["path"] == "/recognize"
    assert record["verdict"] == r.json()["verdict"]
    assert record["vin"] == "WDD2052041F******"
    assert record["latency_ms"] > 0
