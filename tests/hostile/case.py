"""The corpus's unit: one hostile request (an image upload, a VIN, a form field, a hand-made
body, or bytes straight onto the socket) and the outcome it must get."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.core.vin import check_digit

if TYPE_CHECKING:
    from tests.hostile.checker import Expect

VIN = "WDD2052041F123456"  # Baumuster 205.204: C-Class Estate (EU FIN)
NA_GLE = "4JGFB4KB" + check_digit("4JGFB4KB0LA123456") + "LA123456"  # GLE, model year 2020
BOUNDARY = "hostile-boundary-7f3a"  # of the hand-made multipart bodies

Payload = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class Wire:
    """A request written straight onto the socket: lines after the request line, and a body."""

    head: tuple[str, ...]
    body: Payload = b""
    half_close: bool = False  # shut the write side after sending (the client is done)
    expect_continue: bool = False  # send the head, wait for 100 Continue, then the body


@dataclass(frozen=True)
class Case:
    name: str
    expect: Expect
    group: str
    # An ordinary multipart form (httpx): the image part, the VIN and any further parts.
    image: Payload | None = None
    filename: str | None = "car.jpg"
    image_type: str | None = "image/jpeg"
    vin: str | list[str] | None = VIN
    data: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, tuple[str | None, Payload, str | None]], ...] = ()
    # ... or a hand-made body sent with this Content-Type ...
    body: Payload | None = None
    content_type: str | None = None
    # ... or raw bytes on the socket.
    wire: Wire | None = None
    method: str = "POST"
    path: str = "/recognize"
    headers: tuple[tuple[str, str | bytes], ...] = ()
    top_k: int = 3  # on 200: the number of classes listed
    same_as: str | None = None  # on 200: the same prediction as this case (lossless EXIF)
    why: str = ""
    # A gap the service cannot close in its own code today: the test asserts the right outcome
    # as a strict xfail (it fails loudly once the gap closes) and says where the gap is.
    known_gap: str | None = None


def materialize(payload: Payload) -> bytes:
    return payload() if callable(payload) else payload


def image_case(name: str, payload: Payload, expect: Expect, group: str, **kw: Any) -> Case:
    return Case(name, expect, group, image=payload, **kw)


def body_case(
    name: str,
    expect: Expect,
    build: Callable[[], bytes],
    *,
    content_type: str | None = f"multipart/form-data; boundary={BOUNDARY}",
    group: str = "multipart",
    **kw: Any,
) -> Case:
    return Case(name, expect, group, body=build, content_type=content_type, vin=None, **kw)


def wire_case(name: str, expect: Expect, wire: Wire, **kw: Any) -> Case:
    return Case(name, expect, "transport", wire=wire, vin=None, **kw)
