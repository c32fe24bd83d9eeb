"""Multipart bodies made by hand, byte by byte (boundaries, part headers, line endings that a
form encoder would never write), and HTTP/1.1 chunked framing."""

from __future__ import annotations

from functools import cache

from tests.hostile.case import BOUNDARY, VIN
from tests.hostile.images import small_jpeg


def part(headers: list[str] | list[bytes], content: bytes) -> tuple[bytes, bytes]:
    lines = [h if isinstance(h, bytes) else h.encode() for h in headers]
    return b"\r\n".join(lines), content


def vin_part(value: bytes | str = VIN) -> tuple[bytes, bytes]:
    raw = value.encode() if isinstance(value, str) else value
    return part(['Content-Disposition: form-data; name="vin"'], raw)


def image_part(
    content: bytes | None = None, *, filename: bytes = b"car.jpg", ctype: bytes = b"image/jpeg"
) -> tuple[bytes, bytes]:
    disposition = b'Content-Disposition: form-data; name="image"; filename="' + filename + b'"'
    return part(
        [disposition, b"Content-Type: " + ctype], small_jpeg() if content is None else content
    )


def multipart(
    parts: list[tuple[bytes, bytes]],
    boundary: str = BOUNDARY,
    *,
    preamble: bytes = b"",
    epilogue: bytes = b"",
    close: bool = True,
    newline: bytes = b"\r\n",
) -> bytes:
    b = boundary.encode()
    out = preamble
    for headers, content in parts:
        out += b"--" + b + newline + headers.replace(b"\r\n", newline) + newline * 2
        out += content + newline
    if close:
        out += b"--" + b + b"--" + newline
    return out + epilogue


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    out = b"".join(
        b"%x\r\n" % len(body[i : i + size]) + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


@cache
def valid_multipart() -> bytes:
    return multipart([vin_part(), image_part()])


MP_TYPE = f"Content-Type: multipart/form-data; boundary={BOUNDARY}"
