"""The typed client and the portal example against the REAL running service (contract test).

The session fixture ``service`` starts the Serve app with the demo model; nothing here is
mocked. The failure modes that the real service cannot produce on demand (503 with
Retry-After, dropped connections, retries running out) are simulated in
tests/unit/test_client.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtest import photos as f
from service import client as rc
from service.client import AsyncRecognizeClient, RecognizeClient, RecognizeResponse
from service.core.taxonomy import default_taxonomy
from tests.integration.conftest import REPO, RunningService

pytestmark = pytest.mark.integration

EU_C_ESTATE = "WDD2052041F123456"  # Baumuster 205.204: C-Class Estate S205
EXAMPLE = REPO / "examples" / "portal_integration.py"


def api_key(service: RunningService) -> str | None:
    """The key the fixture configured, once the service requires one."""
    return getattr(service, "api_key", None)


@pytest.fixture()
def client(service: RunningService) -> Iterator[RecognizeClient]:
    with RecognizeClient(service.base_url, api_key=api_key(service), timeout=(5.0, 60.0)) as c:
        yield c


def test_recognize_returns_the_typed_result(client: RecognizeClient, tmp_path: Path) -> None:
    result = client.recognize(f.jpeg(), EU_C_ESTATE, top_k=5, request_id="portal-audit-0001")
    assert isinstance(result, RecognizeResponse)
    assert result.request_id == "portal-audit-0001"  # the portal's audit id comes back
    assert result.verdict in {"match", "mismatch", "manual_review"}
    assert result.vin.vin == EU_C_ESTATE and result.vin.layout == "eu"
    assert result.vin.expected_parent == "C-Class"
    assert result.vin.expected_body == "estate"
    assert result.parent_match == (result.prediction.parent == "C-Class")
    assert len(result.prediction.top_k) == 5
    assert result.prediction.top_k[0].class_id == result.prediction.class_id
    assert 0.0 <= result.prediction.confidence <= 1.0
    assert result.model.arch == "convnext_tiny" and result.model.input_size == 224
    assert result.batch_size >= 1 and result.latency_ms.total > 0

    photo = tmp_path / f"{EU_C_ESTATE}.png"
    photo.write_bytes(f.png(seed=3))
    from_path = client.recognize(photo, EU_C_ESTATE)
    assert len(from_path.prediction.top_k) == 3  # the service's default
    assert len(from_path.request_id) >= 16  # made by the client when the caller gives none


def test_invalid_vin_raises_typed_error(client: RecognizeClient) -> None:
    with pytest.raises(rc.InvalidVINError) as info:
        client.recognize(f.jpeg(), "WDD2050461F12345", request_id="portal-audit-0002")
    err = info.value
    assert (err.code, err.field, err.status_code) == ("invalid_vin", "vin", 422)
    assert "17" in err.message and err.request_id == "portal-audit-0002" and err.attempts == 1


@pytest.mark.parametrize(
    ("image", "top_k", "cls", "code", "field"),
    [
        (f.jpeg(), 0, rc.InvalidRequestError, "invalid_request", "top_k"),
        (b"<html>not an image</html>", None, rc.InvalidImageError, "invalid_image", "image"),
        (f.png(8, 8), None, rc.ImageTooSmallError, "image_too_small", "image"),
        (f.encode(f.photo_like(64, 64), "GIF"), None, rc.UnsupportedMediaTypeError, None, "image"),
    ],
    ids=["top_k zero", "not an image", "too small", "gif"],
)
def test_the_services_errors_map_to_their_classes(
    client: RecognizeClient,
    image: bytes,
    top_k: int | None,
    cls: type[rc.RecognizeAPIError],
    code: str | None,
    field: str,
) -> None:
    with pytest.raises(cls) as info:
        client.recognize(image, EU_C_ESTATE, top_k=top_k)
    assert type(info.value) is cls and info.value.field == field
    assert info.value.code == (code or "unsupported_media_type")


def test_model_lists_64_classes(client: RecognizeClient) -> None:
    details = client.model()
    assert isinstance(details, rc.ModelDetails)
    assert len(details.classes) == 64
    assert [c.id for c in details.classes] == [c.id for c in default_taxonomy().classes]
    assert "C-Class" in details.parents
    assert client.ready() is True


def test_unknown_path_raises_a_typed_error(service: RunningService) -> None:
    c = RecognizeClient(service.base_url + "/no-such-prefix", api_key=api_key(service))
    with c, pytest.raises(rc.RecognizeAPIError) as info:
        c.model()
    assert info.value.status_code in (401, 404) and info.value.attempts == 1


def test_a_wrong_key_is_unauthorized_when_keys_are_required(service: RunningService) -> None:
    if api_key(service) is None:
        pytest.skip("the service under test does not require API keys")
    c = RecognizeClient(service.base_url, api_key="not-a-key")
    with c, pytest.raises(rc.UnauthorizedError) as info:
        c.recognize(f.jpeg(), EU_C_ESTATE)
    assert info.value.code == "unauthorized" and info.value.attempts == 1


def test_async_client_concurrent_calls(service: RunningService) -> None:
    images = [f.jpeg(400 + 8 * i, 600, seed=i) for i in range(8)]

    async def run() -> list[RecognizeResponse]:
        async with AsyncRecognizeClient(service.base_url, api_key=api_key(service)) as client:
            assert await client.ready() is True
            return await asyncio.gather(
                *(
                    client.recognize(img, EU_C_ESTATE, request_id=f"portal-batch-{i}")
                    for i, img in enumerate(images)
                )
            )

    results = asyncio.run(run())
    assert [r.request_id for r in results] == [f"portal-batch-{i}" for i in range(8)]
    assert all(r.vin.expected_parent == "C-Class" for r in results)
    # Sent together, at least some of them shared an inference batch.
    assert max(r.batch_size for r in results) > 1, [r.batch_size for r in results]


def test_served_openapi_document_matches_the_committed_one(service: RunningService) -> None:
    key = api_key(service)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    served = httpx.get(service.base_url + "/openapi.json", headers=headers, timeout=30)
    if served.status_code in (401, 403, 404):
        pytest.skip(f"/openapi.json is closed on this service ({served.status_code})")
    committed = json.loads((REPO / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert served.json() == committed, (
        "the served OpenAPI document differs from docs/openapi.json; regenerate it with "
        "recognize openapi --write docs/openapi.json"
    )


def test_portal_example_audits_a_folder(service: RunningService, tmp_path: Path) -> None:
    photos = tmp_path / "lot-17"
    photos.mkdir()
    vins = [EU_C_ESTATE, "WDD2050461F123456", "4JGFB4KB3LA123456"]  # C-Class saloon, GLE (NA)
    for i, vin in enumerate(vins):
        (photos / f"{vin}_front.jpg").write_bytes(f.jpeg(420 + 10 * i, 640, seed=i))
    (photos / "notes.txt").write_text("not a photo")
    env = {k: v for k, v in os.environ.items() if k != "RECOGNIZE_API_KEY"}
    if api_key(service):
        env["RECOGNIZE_API_KEY"] = api_key(service)  # type: ignore[assignment]
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            str(photos),
            "--url",
            service.base_url,
            "--concurrency",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "photo", "VIN", "expected", "parent", "predicted", "parent", "confidence", "verdict",
        "latency",
    ]  # fmt: skip
    rows = [line for line in lines if line.endswith(" ms")]
    assert len(rows) == 3
    c_class = next(line for line in rows if line.startswith(f"{EU_C_ESTATE}_front.jpg"))
    assert EU_C_ESTATE in c_class and "C-Class" in c_class
    assert any(v in c_class for v in ("match", "mismatch", "manual_review"))
    assert "3 photos:" in lines[-1] and "0 failed" in lines[-1]
    assert "3/3" in done.stderr  # the progress bar


def test_portal_example_fails_when_a_request_fails(service: RunningService, tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(f.jpeg())
    (tmp_path / "bad.jpg").write_bytes(f.jpeg(seed=1))
    (tmp_path / "audit.csv").write_text(f"photo,vin\nok.jpg,{EU_C_ESTATE}\nbad.jpg,WDD-NOT-A-VIN\n")
    env = dict(os.environ)
    if api_key(service):
        env["RECOGNIZE_API_KEY"] = api_key(service)  # type: ignore[assignment]
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "audit.csv"), "--url", service.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR invalid_vin" in done.stdout and "1 failed" in done.stdout
