"""What each case must get and how an answer is judged: ``Expect`` (a status and error code, or
200), the outcomes chosen once where several are defensible (with the reason beside each), the
``Outcome`` of sending a case, and ``check``, which lists every way an outcome misses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.hostile.case import Case

ANY = "<any>"  # an Expect.field that is not checked


@dataclass(frozen=True)
class Expect:
    status: int
    code: str | None = None
    field: str | None = ANY
    json: bool = True  # a 4xx carries the JSON error shape

    def label(self) -> str:
        return f"{self.status} {self.code}" if self.code else str(self.status)


OK = Expect(200)
INVALID_IMAGE = Expect(422, "invalid_image", "image")
TOO_SMALL = Expect(422, "image_too_small", "image")
UNSUPPORTED = Expect(415, "unsupported_media_type", "image")
IMAGE_TOO_LARGE = Expect(413, "image_too_large", "image")
PAYLOAD_TOO_LARGE = Expect(413, "payload_too_large")
INVALID_VIN = Expect(422, "invalid_vin", "vin")
NOT_ALLOWED = Expect(405, "method_not_allowed", None)
NOT_FOUND = Expect(404, "not_found", None)


def invalid_request(name: str | None = ANY) -> Expect:
    return Expect(422, "invalid_request", name)


# A body that is not multipart/form-data at all (JSON, url-encoded, text, none): its form has no
# `image` field, which the README documents as 422 `invalid_request` (a missing field). RFC 9110
# would also allow 415, but the README keeps 415 `unsupported_media_type` for the image's format,
# so a second meaning of that code would mislead a client reading `field`.
WRONG_BODY_TYPE = invalid_request()
# A multipart body the form parser cannot read (no boundary, unterminated, broken part headers,
# too many parts): the README documents no 400, so a broken body is an invalid request, 422
# `invalid_request`. Should the lead rather document 400 `bad_request`, change this one line.
MALFORMED = invalid_request()


# A text field larger than the form parser's limit for one field (1 MiB): a size limit, 413
# `payload_too_large` like an oversized image. The field is not asserted: Starlette's error does
# not name the part, and naming it would take a parser of the service's own.
FIELD_TOO_LARGE = PAYLOAD_TOO_LARGE


# Requests the HTTP server itself cannot parse (an unparseable Content-Length, Content-Length
# beside chunked encoding, a broken chunk) never reach the application: Ray Serve's proxy (uvicorn)
# answers 400 in plain text and closes. No JSON is possible there; the status is still asserted.
PROTOCOL_ERROR = Expect(400, None, None, json=False)
# The client broke the framing and then closed its side: there is nobody left to answer.
CLOSED = Expect(0, None, None, json=False)


@dataclass
class Outcome:
    status: int  # 0: the connection closed without a response
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None

    def label(self) -> str:
        return f"{self.status} {self.code}" if self.code else str(self.status)


def check(case: Case, outcome: Outcome, reference: Outcome | None = None) -> list[str]:
    """Every way ``outcome`` misses ``case.expect``; empty when it is right."""
    problems: list[str] = []
    expect = case.expect
    got = outcome.label()
    if outcome.status >= 500:
        problems.append(f"server error {got}: {outcome.body[:300]!r}")
    if outcome.status != expect.status:
        problems.append(f"status {outcome.status}, expected {expect.label()}")
    if outcome.status == 0 or not expect.json:
        return problems
    try:
        body = outcome.json()
    except ValueError:
        return [
            *problems,
            f"not JSON ({outcome.headers.get('content-type')}): {outcome.body[:200]!r}",
        ]
    if not outcome.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type {outcome.headers.get('content-type')}")
    if 400 <= outcome.status < 500:
        problems += _check_error(body, expect)
    elif outcome.status == 200:
        problems += _check_success(case, body, reference)
    return problems


def _check_error(body: Any, expect: Expect) -> list[str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and set(error) == {"code", "message", "field"}):
        return [f"not the error shape: {body!r:.300}"]
    problems = []
    if not (isinstance(error["message"], str) and error["message"]):
        problems.append(f"empty message: {error!r}")
    if expect.code is not None and error["code"] != expect.code:
        problems.append(f"code {error['code']!r}, expected {expect.code!r} ({error['message']})")
    if expect.field != ANY and error["field"] != expect.field:
        problems.append(f"field {error['field']!r}, expected {expect.field!r}")
    return problems


def _check_success(case: Case, body: Any, reference: Outcome | None) -> list[str]:
    try:
        verdict = body["verdict"]
        top_k = body["prediction"]["top_k"]
    except (KeyError, TypeError):
        return [f"not a recognition result: {body!r:.300}"]
    problems = []
    if verdict not in ("match", "mismatch", "manual_review"):
        problems.append(f"verdict {verdict!r}")
    if len(top_k) != case.top_k:
        problems.append(f"{len(top_k)} classes in top_k, expected {case.top_k}")
    if reference is not None and reference.status == 200:
        ref = reference.json()["prediction"]
        got = body["prediction"]
        if got["class_id"] != ref["class_id"] or abs(got["confidence"] - ref["confidence"]) > 1e-4:
            problems.append(
                f"prediction {got['class_id']} {got['confidence']:.6f} differs from the upright "
                f"photo's {ref['class_id']} {ref['confidence']:.6f}: orientation not applied?"
            )
    return problems
