"""The typed client's retry, error and request-building logic, against simulated failures.

httpx.MockTransport stands in for the server ONLY to produce failure modes that are hard to
provoke from the real one on demand: 503 with Retry-After, refused or dropped connections,
retries running out, timeouts, a proxy's plain-text errors. The client against the REAL running
service (success, typed results, the service's real error bodies, concurrency, the example
script) is exercised by the contract test, tests/integration/test_client_contract.py.

No test waits for real: the clients get a sleep function that records the delays.
"""

from __future__ import annotations

import asyncio
import io
import json
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from service import client as rc
from service.api.schemas import (
    CalibrationStatus,
    Latency,
    ModelSummary,
    Prediction,
    RecognizeResponse,
    VinResult,
)
from service.client import (
    AsyncRecognizeClient,
    RecognizeClient,
    RetryPolicy,
)
from service.core.verdict import ScoredClass
from service.core.vin import decode_vin

REPO = Path(__file__).resolve().parents[2]
VIN = "WDD2052041F123456"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64  # the client sends bytes as they are; magic only

Handler = Callable[[httpx.Request], httpx.Response]
UNCALIBRATED = CalibrationStatus(
    calibrated=False,
    id=None,
    temperature=1.0,
    match_threshold=0.8,
    mismatch_threshold=0.8,
    overrides=[],
)


def result_body(request_id: str = "rid") -> dict[str, object]:
    top = ScoredClass(
        class_id="c_class_estate_2014_2021",
        label="C-Class Estate 2014-2021",
        parent="C-Class",
        probability=0.9,
    )
    return RecognizeResponse(
        request_id=request_id,
        verdict="match",
        reasons=[],
        parent_match=True,
        prediction=Prediction(
            class_id=top.class_id,
            label=top.label,
            parent=top.parent,
            confidence=0.9,
            parent_probability=0.95,
            top_k=[top],
        ),
        vin=VinResult(**decode_vin(VIN).model_dump()),
        model=ModelSummary(name="demo", arch="convnext_tiny", version="0", input_size=224),
        calibration=UNCALIBRATED,
        batch_size=1,
        latency_ms=Latency(decode=1, preprocess=1, queue=0, inference=5, total=8),
    ).model_dump(mode="json")


def ok(request: httpx.Request) -> httpx.Response:
    rid = request.headers.get("x-request-id", "")
    return httpx.Response(200, json=result_body(rid), headers={"X-Request-ID": rid})


def error(status: int, code: str, message: str = "no", field: str | None = None, **headers: str):
    body = {"error": {"code": code, "message": message, "field": field}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """A mock server that plays a list of outcomes (responses, or exceptions to raise)."""

    def __init__(self, *outcomes: httpx.Response | type[httpx.TransportError] | Handler) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, type):
            raise outcome("simulated", request=request)
        if callable(outcome):
            return outcome(request)
        return outcome

    @property
    def request_ids(self) -> list[str]:
        return [r.headers["x-request-id"] for r in self.requests]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(script: Script, sleeps: Sleeps | None = None, **kwargs: object) -> RecognizeClient:
    kwargs.setdefault("retries", RetryPolicy(max_attempts=4, backoff_base_s=0.1, jitter=0.0))
    return RecognizeClient(
        "http://127.0.0.1:1",
        transport=httpx.MockTransport(script),
        sleep=sleeps if sleeps is not None else Sleeps(),
        **kwargs,  # type: ignore[arg-type]
    )


# --- retries ----------------------------------------------------------------------------------


def test_503_with_retry_after_then_success_honours_the_hint() -> None:
    script = Script(error(503, "overloaded", **{"Retry-After": "2"}), ok)
    sleeps = Sleeps()
    with make_client(script, sleeps) as client:
        result = client.recognize(JPEG, VIN)
    assert result.verdict == "match"
    assert len(script.requests) == 2
    assert sleeps == [2.0]  # at least the server's hint, though the backoff alone is 0.1 s


def test_connection_errors_then_success() -> None:
    script = Script(httpx.ConnectError, httpx.RemoteProtocolError, httpx.ConnectTimeout, ok)
    sleeps = Sleeps()
    with make_client(script, sleeps) as client:
        result = client.recognize(JPEG, VIN)
    assert result.prediction.parent == "C-Class"
    assert len(script.requests) == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])  # exponential, no jitter here


def test_503_retries_exhausted_raise_the_typed_error() -> None:
    script = Script(error(503, "overloaded", "shedding load", **{"Retry-After": "1"}))
    sleeps = Sleeps()
    with make_client(script, sleeps) as client, pytest.raises(rc.OverloadedError) as info:
        client.recognize(JPEG, VIN, request_id="audit-7")
    err = info.value
    assert isinstance(err, rc.ServiceUnavailableError)
    assert (err.code, err.status_code, err.message) == ("overloaded", 503, "shedding load")
    assert err.retry_after == 1.0 and err.attempts == 4 and err.request_id == "audit-7"
    assert len(script.requests) == 4 and len(sleeps) == 3


def test_connection_errors_exhausted_raise_connection_error() -> None:
    script = Script(httpx.ConnectError)
    sleeps = Sleeps()
    with make_client(script, sleeps) as client, pytest.raises(rc.RecognizeConnectionError) as info:
        client.model()
    assert not isinstance(info.value, rc.ClientTimeoutError)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert info.value.attempts == 4 and len(script.requests) == 4 and len(sleeps) == 3
    assert info.value.request_id == script.request_ids[0]


@pytest.mark.parametrize(
    ("status", "code", "field", "cls"),
    [
        (422, "invalid_request", "top_k", rc.InvalidRequestError),
        (422, "invalid_vin", "vin", rc.InvalidVINError),
        (422, "invalid_image", "image", rc.InvalidImageError),
        (422, "image_too_small", "image", rc.ImageTooSmallError),
        (415, "unsupported_media_type", "image", rc.UnsupportedMediaTypeError),
        (413, "payload_too_large", "image", rc.PayloadTooLargeError),
        (413, "image_too_large", "image", rc.ImageTooLargeError),
        (401, "unauthorized", None, rc.UnauthorizedError),
        (404, "not_found", None, rc.RecognizeAPIError),
        (500, "internal_error", None, rc.RecognizeAPIError),
        (504, "timeout", None, rc.ServerTimeoutError),
    ],
)
def test_errors_other_than_503_are_raised_at_once_with_their_code(
    status: int, code: str, field: str | None, cls: type[rc.RecognizeAPIError]
) -> None:
    script = Script(error(status, code, f"bad {code}", field, **{"X-Request-ID": "srv-1"}))
    sleeps = Sleeps()
    with make_client(script, sleeps) as client, pytest.raises(cls) as info:
        client.recognize(JPEG, VIN, request_id="srv-1")
    err = info.value
    assert type(err) is cls and rc.ERROR_CLASSES.get(code, rc.RecognizeAPIError) is cls
    assert (err.code, err.status_code, err.field, err.message) == (
        code,
        status,
        field,
        f"bad {code}",
    )
    assert err.request_id == "srv-1" and err.attempts == 1
    assert len(script.requests) == 1 and sleeps == []
    assert code in str(err) and "srv-1" in str(err)


def test_504_is_retried_only_when_the_policy_says_so() -> None:
    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.1, jitter=0, statuses={503, 504})
    script = Script(error(504, "timeout"), ok)
    with make_client(script, retries=policy) as client:
        assert client.recognize(JPEG, VIN).verdict == "match"
    assert len(script.requests) == 2


def test_read_timeout_is_not_retried() -> None:
    script = Script(httpx.ReadTimeout)
    with make_client(script) as client, pytest.raises(rc.ClientTimeoutError) as info:
        client.recognize(JPEG, VIN)
    assert isinstance(info.value, rc.RecognizeConnectionError)
    assert info.value.attempts == 1 and len(script.requests) == 1


def test_request_id_is_the_same_on_every_attempt() -> None:
    script = Script(httpx.ConnectError, error(503, "not_ready"), ok)
    with make_client(script) as client:
        result = client.recognize(JPEG, VIN, request_id="portal-audit-42")
        assert script.request_ids == ["portal-audit-42"] * 3
        assert result.request_id == "portal-audit-42"

        script.requests.clear()
        script.outcomes = [error(503, "overloaded"), ok]
        generated = client.recognize(JPEG, VIN)
        first, second = script.request_ids
        assert first == second == generated.request_id and len(first) == 32

        script.requests.clear()
        client.recognize(JPEG, VIN)
        assert script.request_ids[0] != first  # a new logical call gets a new id


def test_backoff_is_bounded_and_the_retry_after_hint_is_capped() -> None:
    policy = RetryPolicy(max_attempts=8, backoff_base_s=0.5, backoff_cap_s=3.0, jitter=0.0)
    sleeps = Sleeps()
    client = make_client(Script(error(503, "overloaded")), sleeps, retries=policy)
    with client, pytest.raises(rc.OverloadedError):
        client.model()
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]

    sleeps.clear()
    hint = error(503, "overloaded", **{"Retry-After": "3600"})
    client = make_client(Script(hint), sleeps, retries=policy)
    with client, pytest.raises(rc.OverloadedError) as info:
        client.model()
    assert sleeps == [3.0] * 7 and info.value.retry_after == 3600.0


def test_jitter_stays_within_its_share_of_the_backoff() -> None:
    policy = RetryPolicy(max_attempts=6, backoff_base_s=1.0, backoff_cap_s=4.0, jitter=0.5)
    for rand in (0.0, 0.5, 0.999):
        sleeps = Sleeps()
        client = make_client(
            Script(httpx.ConnectError), sleeps, retries=policy, rand=lambda r=rand: r
        )
        with client, pytest.raises(rc.RecognizeConnectionError):
            client.model()
        for delay, backoff in zip(sleeps, [1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
            assert backoff * 0.5 <= delay <= backoff
            assert delay == pytest.approx(backoff * (1 - 0.5 * rand))


def test_deadline_stops_retrying() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base_s=1.0, jitter=0.0, deadline_s=2.5)
    sleeps = Sleeps()
    client = make_client(Script(error(503, "overloaded")), sleeps, retries=policy)
    with client, pytest.raises(rc.OverloadedError) as info:
        client.model()
    assert sleeps == [1.0, 2.0] and info.value.attempts == 3  # the real clock barely moves


def test_no_retries_policy_sends_once() -> None:
    script = Script(error(503, "overloaded"))
    with make_client(script, retries=1) as client, pytest.raises(rc.OverloadedError):
        client.model()
    assert len(script.requests) == 1


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert rc.parse_retry_after("5", now=now) == 5.0
    assert rc.parse_retry_after("-3", now=now) == 0.0
    assert (
        rc.parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now)
        == 7.0
    )
    assert rc.parse_retry_after("soon", now=now) is None
    assert rc.parse_retry_after(None) is None


# --- bodies that are not the service's --------------------------------------------------------


def test_non_json_error_body_still_raises_a_typed_error() -> None:
    ray_404 = httpx.Response(
        404, text="Path '/v2/recognize' not found. Ping http://.../-/routes for available routes."
    )
    with make_client(Script(ray_404)) as client, pytest.raises(rc.RecognizeAPIError) as info:
        client.recognize(JPEG, VIN)
    err = info.value
    assert (err.code, err.status_code, err.field) == ("not_found", 404, None)
    assert "not found" in err.message and "HTTP 404" in err.message


def test_proxy_plain_text_503_is_retried_then_raised_as_unavailable() -> None:
    shed = httpx.Response(
        503, text="Request dropped due to backpressure", headers={"Retry-After": "1"}
    )
    script = Script(shed)
    with make_client(script) as client, pytest.raises(rc.ServiceUnavailableError) as info:
        client.recognize(JPEG, VIN)
    assert info.value.code == "unavailable" and len(script.requests) == 4
    assert "backpressure" in info.value.message


def test_html_413_from_an_ingress_controller_maps_by_status() -> None:
    page = httpx.Response(413, html="<html><body>413 Request Entity Too Large</body></html>")
    with make_client(Script(page)) as client, pytest.raises(rc.PayloadTooLargeError) as info:
        client.recognize(JPEG, VIN)
    assert info.value.code == "payload_too_large"


def test_success_with_a_foreign_body_raises_response_error() -> None:
    client = make_client(Script(httpx.Response(200, json={"hello": "world"})))
    with client, pytest.raises(rc.RecognizeResponseError) as info:
        client.recognize(JPEG, VIN)
    assert info.value.status_code == 200 and "RecognizeResponse" in str(info.value)


# --- what goes over the wire ------------------------------------------------------------------


def multipart_fields(request: httpx.Request) -> dict[str, tuple[str | None, bytes]]:
    """name → (filename, content) of a multipart body, read back with the stdlib."""
    from email.parser import BytesParser
    from email.policy import HTTP

    raw = b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(raw + request.read())
    fields = {}
    for part in message.iter_parts():
        fields[part.get_param("name", header="content-disposition")] = (
            part.get_filename(),
            part.get_payload(decode=True),
        )
    return fields


def test_request_carries_form_fields_key_and_headers(tmp_path: Path) -> None:
    script = Script(ok)
    with make_client(script, api_key="s3cret", headers={"X-Tenant-Hint": "portal"}) as client:
        client.recognize(JPEG, VIN, top_k=5, request_id="a-1", filename="lot7.jpg")
        photo = tmp_path / "WDD2052041F123456.jpg"
        photo.write_bytes(JPEG)
        client.recognize(photo, VIN)
        client.recognize(str(photo), VIN)
        with photo.open("rb") as fh:
            client.recognize(fh, VIN)
        client.recognize(bytearray(JPEG), VIN)
        assert "s3cret" not in repr(client)
    first = script.requests[0]
    assert first.method == "POST" and first.url.path == "/recognize"
    assert first.headers["authorization"] == "Bearer s3cret"
    assert first.headers["x-tenant-hint"] == "portal"
    assert first.headers["user-agent"].startswith("recognize-client/")
    assert first.headers["x-request-id"] == "a-1"
    fields = multipart_fields(first)
    assert fields["vin"] == (None, VIN.encode()) and fields["top_k"] == (None, b"5")
    assert fields["image"] == ("lot7.jpg", JPEG)
    assert b"Content-Type: image/jpeg" in first.content
    names = [multipart_fields(r)["image"][0] for r in script.requests[1:]]
    assert names == ["WDD2052041F123456.jpg"] * 3 + ["image"]
    assert all(multipart_fields(r)["image"][1] == JPEG for r in script.requests)
    assert "top_k" not in multipart_fields(script.requests[1])


def test_text_file_objects_are_refused() -> None:
    with make_client(Script(ok)) as client, pytest.raises(TypeError, match="binary"):
        client.recognize(io.StringIO("not bytes"), VIN)  # type: ignore[arg-type]


def test_base_url_path_prefix_is_kept() -> None:
    script = Script(ok)
    client = RecognizeClient(
        "http://127.0.0.1:1/recognize-api/", transport=httpx.MockTransport(script)
    )
    with client:
        client.recognize(JPEG, VIN)
    assert script.requests[0].url.path == "/recognize-api/recognize"


def test_ready_is_one_probe() -> None:
    with make_client(Script(httpx.Response(200, json={"status": "ready"}))) as client:
        assert client.ready() is True
    script = Script(error(503, "not_ready"))
    with make_client(script) as client:
        assert client.ready() is False
    assert len(script.requests) == 1
    with make_client(Script(httpx.ConnectError)) as client:
        assert client.ready() is False
    client = make_client(Script(error(401, "unauthorized")))
    with client, pytest.raises(rc.UnauthorizedError):
        client.ready()


def test_model_parses_model_details() -> None:
    body = {
        "name": "demo",
        "arch": "convnext_tiny",
        "version": "0",
        "input_size": 224,
        "interpolation": "bicubic",
        "precision": "fp32",
        "taxonomy_version": "1",
        "providers": ["CPUExecutionProvider"],
        "match_threshold": 0.8,
        "mismatch_threshold": 0.8,
        "calibration": {**UNCALIBRATED.model_dump(), "certificate": None},
        "parents": ["C-Class"],
        "classes": [
            {
                "id": "c",
                "label": "C",
                "parent": "C-Class",
                "body": "estate",
                "years": "2014-2021",
                "enabled": True,
                "match_threshold": None,
            }
        ],
    }
    script = Script(httpx.Response(200, json=body))
    with make_client(script) as client:
        details = client.model()
    assert isinstance(details, rc.ModelDetails) and details.classes[0].parent == "C-Class"
    assert script.requests[0].url.path == "/v1/model"


def test_errors_survive_pickling() -> None:
    err = rc.InvalidVINError("invalid_vin", "bad VIN", "vin", 422, "rid-1", attempts=1)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is rc.InvalidVINError and str(copy) == str(err)
    assert (copy.code, copy.field, copy.status_code, copy.request_id) == (
        "invalid_vin",
        "vin",
        422,
        "rid-1",
    )
    lost = pickle.loads(
        pickle.dumps(rc.RecognizeConnectionError("down", request_id="r", attempts=4))
    )
    assert (lost.message, lost.request_id, lost.attempts) == ("down", "r", 4)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    assert RetryPolicy(statuses={503, 504}).statuses == frozenset({503, 504})


# --- the async client shares the logic --------------------------------------------------------


def test_async_client_retries_and_keeps_the_request_id() -> None:
    script = Script(httpx.ConnectError, error(503, "overloaded", **{"Retry-After": "1"}), ok)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run() -> rc.RecognizeResponse:
        async with AsyncRecognizeClient(
            "http://127.0.0.1:1",
            transport=httpx.MockTransport(script),
            retries=RetryPolicy(backoff_base_s=0.1, jitter=0.0),
            sleep=fake_sleep,
        ) as client:
            return await client.recognize(JPEG, VIN, request_id="audit-9")

    result = asyncio.run(run())
    assert result.request_id == "audit-9" and script.request_ids == ["audit-9"] * 3
    assert sleeps == [0.1, 1.0]


def test_async_client_errors_and_ready(tmp_path: Path) -> None:
    photo = tmp_path / "car.jpg"
    photo.write_bytes(JPEG)

    async def run() -> None:
        script = Script(error(422, "invalid_vin", "VIN must be 17 characters", "vin"))
        async with AsyncRecognizeClient(
            "http://127.0.0.1:1", transport=httpx.MockTransport(script)
        ) as client:
            with pytest.raises(rc.InvalidVINError) as info:
                await client.recognize(photo, "WDD")
            assert info.value.field == "vin" and len(script.requests) == 1
            assert multipart_fields(script.requests[0])["image"] == ("car.jpg", JPEG)
            script.outcomes = [httpx.Response(200, json={"status": "ready"})]
            assert await client.ready() is True

    asyncio.run(run())


# --- packaging and the OpenAPI document -------------------------------------------------------


def test_openapi_document_is_in_sync() -> None:
    from service.api.ingress import openapi_document

    path = REPO / "docs" / "openapi.json"
    current = openapi_document()
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    assert committed == current, (
        "docs/openapi.json is out of date with the app; regenerate it with\n"
        "    .venv/bin/recognize openapi --write docs/openapi.json"
    )
    assert set(json.loads(current)["paths"]) >= {"/recognize", "/v1/model", "/readyz"}
