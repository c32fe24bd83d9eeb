"""A hostile-input corpus for ``POST /recognize``, generated on the fly, and a client to send it.

Every case names the request (an image upload, a VIN, a form field, a hand-made multipart body,
or bytes straight onto the socket) and the outcome a demanding client expects from the README's
error table: a status and error code, or 200. Where several outcomes are defensible the choice
is made once, in the constants below, with the reason beside it.

Payloads are built lazily (a few are megabytes) and cached, so the corpus can be listed at
collection time for free and sent several times (tests/integration/test_hostile_inputs.py).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import random
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageCms

from loadtest import photos as f
from service.core.vin import check_digit

VIN = "WDD2052041F123456"  # Baumuster 205.204: C-Class Estate (EU FIN)
NA_GLE = "4JGFB4KB" + check_digit("4JGFB4KB0LA123456") + "LA123456"  # GLE, model year 2020
ANY = "<any>"  # an Expect.field that is not checked
BOUNDARY = "hostile-boundary-7f3a"

Payload = bytes | Callable[[], bytes]


# --- expected outcomes --------------------------------------------------------------------------


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


# --- the corpus's unit -----------------------------------------------------------------------


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


# --- image bytes ----------------------------------------------------------------------------------

PNG_SIG = b"\x89PNG\r\n\x1a\n"


@cache
def small_jpeg() -> bytes:
    return f.jpeg(96, 128)


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


@cache
def photo(width: int = 96, height: int = 128, seed: int = 0) -> Image.Image:
    return f.photo_like(width, height, seed)


def png_chunk(tag: bytes, data: bytes, *, crc: int | None = None) -> bytes:
    value = zlib.crc32(tag + data) if crc is None else crc
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", value & 0xFFFFFFFF)


def png_file(
    width: int,
    height: int,
    idat: bytes,
    *,
    bit_depth: int = 8,
    color_type: int = 2,
    interlace: int = 0,
    before: bytes = b"",
    ihdr_crc: int | None = None,
    idat_crc: int | None = None,
    iend: bool = True,
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    out = PNG_SIG + png_chunk(b"IHDR", ihdr, crc=ihdr_crc) + before
    out += png_chunk(b"IDAT", idat, crc=idat_crc)
    return out + (png_chunk(b"IEND", b"") if iend else b"")


def _scanlines(arr: np.ndarray, bit_depth: int) -> bytes:
    """Rows with filter type 0, samples big-endian."""
    rows = arr.reshape(arr.shape[0], -1).astype(">u2" if bit_depth == 16 else "u1")
    raw = rows.view(np.uint8).reshape(arr.shape[0], -1)
    return np.concatenate([np.zeros((arr.shape[0], 1), np.uint8), raw], axis=1).tobytes()


def png_from_array(
    arr: np.ndarray, *, color_type: int, bit_depth: int, adam7: bool = False
) -> bytes:
    height, width = arr.shape[:2]
    if not adam7:
        raw = _scanlines(arr, bit_depth)
    else:
        passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4))
        passes += ((1, 0, 2, 2), (0, 1, 1, 2))
        raw = b"".join(
            _scanlines(sub, bit_depth)
            for x0, y0, dx, dy in passes
            if (sub := arr[y0::dy, x0::dx]).size
        )
    return png_file(
        width,
        height,
        zlib.compress(raw, 6),
        bit_depth=bit_depth,
        color_type=color_type,
        interlace=int(adam7),
    )


def png_16bit(color_type: int, *, adam7: bool = False) -> bytes:
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    rgb = np.asarray(photo(), dtype=np.uint16) * 257
    planes = [rgb[..., 0], rgb[..., 1], rgb[..., 2]][: min(channels, 3)]
    if channels in (2, 4):
        planes = [*planes[: channels - 1], np.full(rgb.shape[:2], 65535, np.uint16)]
    return png_from_array(
        np.stack(planes, axis=-1), color_type=color_type, bit_depth=16, adam7=adam7
    )


def png_grey_bits(bit_depth: int) -> bytes:
    """A greyscale PNG with 1, 2 or 4 bits a sample, packed by hand."""
    grey = np.asarray(photo().convert("L"), dtype=np.uint8) >> (8 - bit_depth)
    per_byte = 8 // bit_depth
    height, width = grey.shape
    padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
    padded[:, :width] = grey
    groups = padded.reshape(height, -1, per_byte)
    packed = np.zeros(groups.shape[:2], np.uint8)
    for i in range(per_byte):
        packed |= groups[:, :, i] << (8 - bit_depth * (i + 1))
    raw = np.concatenate([np.zeros((height, 1), np.uint8), packed], axis=1).tobytes()
    return png_file(width, height, zlib.compress(raw), bit_depth=bit_depth, color_type=0)


@cache
def png_20000_square() -> bytes:
    """A real, fully decodable 20000x20000 greyscale PNG (400 MP) in ~390 kB: a pixel bomb."""
    comp = zlib.compressobj(9)
    block = (b"\x00" * 20001) * 100  # 100 rows, filter byte + 20000 black pixels each
    idat = b"".join(comp.compress(block) for _ in range(200)) + comp.flush()
    return png_file(20000, 20000, idat, color_type=0)


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A well-formed PNG header declaring any size, with a few bytes of pixel data."""
    return png_file(width, height, zlib.compress(b"\x00" * 64), color_type=color_type)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims another size."""
    data = bytearray(f.jpeg(64, 64))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def riff(fourcc: bytes, chunks: bytes, *, size: int | None = None) -> bytes:
    body = fourcc + chunks
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def webp_chunk(tag: bytes, data: bytes) -> bytes:
    pad = b"\x00" if len(data) % 2 else b""
    return tag + struct.pack("<I", len(data)) + data + pad


def webp_lossless_declaring(width: int, height: int) -> bytes:
    """A WebP whose lossless (VP8L) header claims width x height; the bitstream is junk."""
    bits = (width - 1) | ((height - 1) << 14)
    header = b"\x2f" + struct.pack("<I", bits)
    return riff(b"WEBP", webp_chunk(b"VP8L", header + b"\x00" * 64))


def truncate(payload: Callable[[], bytes], cut: int | float) -> Callable[[], bytes]:
    """The payload cut after ``cut`` bytes (an int; negative counts from the end) or a fraction."""

    def make() -> bytes:
        data = payload()
        end = int(len(data) * cut) if isinstance(cut, float) else cut
        return data[:end]

    return make


def mutate(
    payload: Callable[[], bytes], change: Callable[[bytearray], None]
) -> Callable[[], bytes]:
    def make() -> bytes:
        data = bytearray(payload())
        change(data)
        return bytes(data)

    return make


def scan_middle(data: bytearray) -> int:
    """An offset in the middle of a JPEG's entropy-coded scan data."""
    sos = data.index(b"\xff\xda")
    return (sos + len(data)) // 2


def corrupt_huffman(data: bytearray) -> None:
    mid = scan_middle(data)
    rng = random.Random(7)
    for i in range(mid, mid + 64):
        byte = rng.randrange(256)
        data[i] = byte if byte != 0xFF else 0x00  # no accidental markers


def marker_mid_scan(marker: bytes) -> Callable[[bytearray], None]:
    def change(data: bytearray) -> None:
        mid = scan_middle(data)
        data[mid : mid + 2] = marker

    return change


def png_chunk_offset(data: bytes | bytearray, tag: bytes) -> tuple[int, int]:
    """(offset of the chunk's data, its length)."""
    at = data.index(tag)
    return at + 4, struct.unpack(">I", data[at - 4 : at])[0]


def flip_idat_crc(data: bytearray) -> None:
    start, length = png_chunk_offset(data, b"IDAT")
    data[start + length] ^= 0xFF


def flip_idat_data(data: bytearray) -> None:
    start, length = png_chunk_offset(data, b"IDAT")
    data[start + length // 2] ^= 0xFF


def inverse_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """Store the pixels so that a viewer applying EXIF ``orientation`` shows ``img`` upright."""
    inverse = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    return img.transpose(inverse[orientation]) if orientation in inverse else img


def oriented(fmt: str, orientation: int) -> Callable[[], bytes]:
    def make() -> bytes:
        upright = photo(96, 160, seed=3)
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = inverse_orientation(upright, orientation)
        if fmt == "JPEG":
            return encode(stored, "JPEG", quality=95, exif=exif.tobytes())
        if fmt == "WEBP":
            return encode(stored, "WEBP", lossless=True, exif=exif.tobytes())
        return encode(stored, "PNG", exif=exif.tobytes())

    return make


def upright(fmt: str) -> Callable[[], bytes]:
    params = {"lossless": True} if fmt == "WEBP" else {}
    return lambda: encode(photo(96, 160, seed=3), fmt, **params)


def tiff_ifd(
    entries: list[tuple[int, int, int, bytes]], *, big_endian: bool = False, next_ifd: int = 0
) -> bytes:
    """A TIFF header and one IFD at offset 8: (tag, type, count, 4 value bytes) entries."""
    e = ">" if big_endian else "<"
    out = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    out += struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack(e + "HHI", tag, typ, count) + value.ljust(4, b"\x00")[:4]
    return out + struct.pack(e + "I", next_ifd)


def short(value: int, *, big_endian: bool = False) -> bytes:
    return struct.pack(">H" if big_endian else "<H", value)


def jpeg_with_exif(exif_payload: bytes) -> Callable[[], bytes]:
    """A JPEG carrying this raw APP1 payload (which should start with b'Exif\\0\\0')."""

    def make() -> bytes:
        return encode(photo(96, 160, seed=3), "JPEG", quality=90, exif=exif_payload)

    return make


def jpeg_with_segments(segments: bytes) -> Callable[[], bytes]:
    """A JPEG with raw marker segments inserted right after SOI."""

    def make() -> bytes:
        data = small_jpeg()
        return data[:2] + segments + data[2:]

    return make


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


@cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def frames(count: int) -> list[Image.Image]:
    return [photo(96, 128, seed=s) for s in range(count)]


def animated(fmt: str, count: int = 3, **params: Any) -> Callable[[], bytes]:
    def make() -> bytes:
        first, *rest = frames(count)
        return encode(first, fmt, save_all=True, append_images=rest, duration=100, **params)

    return make


def with_trailing(payload: Callable[[], bytes], tail: bytes) -> Callable[[], bytes]:
    return lambda: payload() + tail


def png_with_chunks(before_idat: bytes) -> Callable[[], bytes]:
    """The small PNG with chunks inserted before its first IDAT."""

    def make() -> bytes:
        data = encode(photo(), "PNG")
        at = data.index(b"IDAT") - 4
        return data[:at] + before_idat + data[at:]

    return make


def png_split_idat(size: int) -> Callable[[], bytes]:
    """The small PNG with its pixel data cut into many IDAT chunks of ``size`` bytes."""

    def make() -> bytes:
        img = photo()
        raw = _scanlines(np.asarray(img), 8)
        stream = zlib.compress(raw)
        ihdr = struct.pack(">IIBBBBB", img.width, img.height, 8, 2, 0, 0, 0)
        idats = b"".join(
            png_chunk(b"IDAT", stream[i : i + size]) for i in range(0, len(stream), size)
        )
        return PNG_SIG + png_chunk(b"IHDR", ihdr) + idats + png_chunk(b"IEND", b"")

    return make


def png_extra_idat_data() -> bytes:
    """A 96x128 PNG whose compressed stream goes on for 50 MB past the last row."""
    img = photo()
    comp = zlib.compressobj(9)
    stream = comp.compress(_scanlines(np.asarray(img), 8))
    stream += b"".join(comp.compress(b"\x00" * 1_000_000) for _ in range(50)) + comp.flush()
    return png_file(img.width, img.height, stream)


def ztxt_bomb() -> bytes:
    """A zTXt chunk whose text inflates to 64 MB (Pillow refuses more than 1 MB of text)."""
    comp = zlib.compressobj(9)
    text = b"".join(comp.compress(b"A" * 1_000_000) for _ in range(64)) + comp.flush()
    return png_chunk(b"zTXt", b"Comment\x00\x00" + text)


# --- multipart bodies made by hand --------------------------------------------------------------


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


def chunked(body: bytes, size: int = 64 * 1024) -> bytes:
    out = b"".join(
        b"%x\r\n" % len(body[i : i + size]) + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


@cache
def valid_multipart() -> bytes:
    return multipart([vin_part(), image_part()])


def wire_case(name: str, expect: Expect, wire: Wire, **kw: Any) -> Case:
    return Case(name, expect, "transport", wire=wire, vin=None, **kw)


MP_TYPE = f"Content-Type: multipart/form-data; boundary={BOUNDARY}"


# --- the corpus -------------------------------------------------------------------------------


def _img(name: str, payload: Payload, expect: Expect, group: str, **kw: Any) -> Case:
    return Case(name, expect, group, image=payload, **kw)


def not_images() -> Iterator[Case]:
    g = "not an image"
    rng = random.Random(1)
    noise = bytes(rng.randrange(256) for _ in range(4096))
    rows: list[tuple[str, Payload, Expect]] = [
        ("zero bytes", b"", INVALID_IMAGE),
        ("one byte 0xff", b"\xff", INVALID_IMAGE),
        ("two bytes of JPEG SOI", b"\xff\xd8", INVALID_IMAGE),
        ("JPEG magic only", b"\xff\xd8\xff", INVALID_IMAGE),
        ("JPEG magic then text", b"\xff\xd8\xffthis is not a jpeg at all", INVALID_IMAGE),
        ("PNG signature only", PNG_SIG, INVALID_IMAGE),
        ("PNG signature then text", PNG_SIG + b"hello world, not a chunk", INVALID_IMAGE),
        ("RIFF WEBP header only", b"RIFF\x04\x00\x00\x00WEBP", INVALID_IMAGE),
        ("ascii text", b"just some text about a car\n", INVALID_IMAGE),
        ("utf-8 text", "Fahrzeug prüfen: ✓ 車".encode(), INVALID_IMAGE),
        ("utf-16 text with BOM", "a photo of a car".encode("utf-16"), INVALID_IMAGE),
        (
            "html page",
            b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
            INVALID_IMAGE,
        ),
        ("json document", json.dumps({"image": "car.jpg", "vin": VIN}).encode(), INVALID_IMAGE),
        ("xml document", b'<?xml version="1.0"?><car vin="x"/>', INVALID_IMAGE),
        ("csv", b"vin,model\nWDD2052041F123456,C-Class\n", INVALID_IMAGE),
        ("python script", b"import os\nos.system('rm -rf /')\n", INVALID_IMAGE),
        ("4 KiB of random bytes", noise, INVALID_IMAGE),
        ("4 KiB of zeros", b"\x00" * 4096, INVALID_IMAGE),
        ("4 KiB of 0xff", b"\xff" * 4096, INVALID_IMAGE),
        ("zip archive header", b"PK\x03\x04" + b"\x00" * 60, INVALID_IMAGE),
        ("gzip of a JPEG", lambda: gzip.compress(small_jpeg()), INVALID_IMAGE),
        ("base64 of a JPEG", lambda: base64.b64encode(small_jpeg()), INVALID_IMAGE),
        (
            "data: URI of a JPEG",
            lambda: b"data:image/jpeg;base64," + base64.b64encode(small_jpeg()),
            INVALID_IMAGE,
        ),
        ("ELF executable header", b"\x7fELF\x02\x01\x01" + b"\x00" * 57, INVALID_IMAGE),
        (
            "MP4 video header",
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64,
            INVALID_IMAGE,
        ),
        ("WAV audio (RIFF WAVE)", riff(b"WAVE", webp_chunk(b"fmt ", b"\x00" * 16)), INVALID_IMAGE),
        ("AVI video (RIFF AVI)", riff(b"AVI ", webp_chunk(b"LIST", b"\x00" * 16)), INVALID_IMAGE),
    ]
    for name, payload, expect in rows:
        yield _img(name, payload, expect, g)


def other_formats() -> Iterator[Case]:
    """Real images in formats the service does not take: 415, whatever the name says."""
    g = "other image format"
    heif = b"\x00\x00\x00\x18ftyp%s\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480"><rect/></svg>'
    rows: list[tuple[str, Payload]] = [
        ("GIF", lambda: encode(photo(), "GIF")),
        ("GIF87a header", b"GIF87a" + b"\x40\x00\x40\x00" + b"\x00" * 64),
        ("animated GIF", animated("GIF")),
        ("TIFF little-endian", lambda: encode(photo(), "TIFF")),
        ("TIFF big-endian header", b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 64),
        ("BMP", lambda: encode(photo(), "BMP")),
        ("ICO", lambda: encode(photo(64, 64), "ICO", sizes=[(64, 64)])),
        ("PSD header", b"8BPS\x00\x01" + b"\x00" * 64),
        ("PDF document", b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF\n"),
        ("HEIC header (ftypheic)", heif % b"heic"),
        ("HEIC header (ftypheix)", heif % b"heix"),
        ("HEIF header (ftypmif1)", heif % b"mif1"),
        ("AVIF header (ftypavif)", heif % b"avif"),
        # The README's 415 covers "an image, but not JPEG, PNG or WebP": these are images too.
        ("SVG", svg),
        ("SVG with XML prolog", b'<?xml version="1.0" encoding="UTF-8"?>\n' + svg),
        ("JPEG XL container", b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 64),
        ("JPEG 2000 (JP2)", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64),
    ]
    for name, payload in rows:
        yield _img(name, payload, UNSUPPORTED, g)
    yield _img("GIF named car.jpg as image/jpeg", lambda: encode(photo(), "GIF"), UNSUPPORTED, g)
    yield _img(
        "TIFF named car.png as image/png",
        lambda: encode(photo(), "TIFF"),
        UNSUPPORTED,
        g,
        filename="car.png",
        image_type="image/png",
    )
    yield _img(
        "BMP named car.webp as image/webp",
        lambda: encode(photo(), "BMP"),
        UNSUPPORTED,
        g,
        filename="car.webp",
        image_type="image/webp",
    )


def labels() -> Iterator[Case]:
    """The format is judged by content: names and declared types neither help nor hurt."""
    g = "name and declared type"
    png = lambda: encode(photo(), "PNG")  # noqa: E731
    webp = lambda: encode(photo(), "WEBP")  # noqa: E731
    rows: list[tuple[str, Payload, Expect, str | None, str | None]] = [
        (
            "text named car.jpg as image/jpeg",
            b"definitely not a jpeg",
            INVALID_IMAGE,
            "car.jpg",
            "image/jpeg",
        ),
        (
            "html named car.png as image/png",
            b"<html><body>hi</body></html>",
            INVALID_IMAGE,
            "car.png",
            "image/png",
        ),
        (
            "zeros named car.webp as image/webp",
            b"\x00" * 1024,
            INVALID_IMAGE,
            "car.webp",
            "image/webp",
        ),
        ("PNG named car.jpg as image/jpeg", png, OK, "car.jpg", "image/jpeg"),
        ("WebP named car.gif as image/gif", webp, OK, "car.gif", "image/gif"),
        ("JPEG named car.png as image/png", small_jpeg, OK, "car.png", "image/png"),
        ("JPEG as application/octet-stream", small_jpeg, OK, "car", "application/octet-stream"),
        ("JPEG as text/html", small_jpeg, OK, "car.html", "text/html"),
        ("JPEG without a part Content-Type", small_jpeg, OK, "car.jpg", None),
        ("JPEG named car.exe", small_jpeg, OK, "car.exe", "application/x-msdownload"),
    ]
    for name, payload, expect, filename, ctype in rows:
        yield _img(name, payload, expect, g, filename=filename, image_type=ctype)


def truncations() -> Iterator[Case]:
    """Cut JPEG/PNG/WebP files: header cuts, mid-file cuts, and cuts that lose only the end.

    A file cut short is "truncated" in the README's words, 422 `invalid_image`, also where the
    cut falls exactly before the end marker (JPEG EOI, PNG IEND): a transfer that stopped early
    must not pass as a photo.
    """
    g = "truncated"
    sources: dict[str, Callable[[], bytes]] = {
        "JPEG": lambda: encode(photo(), "JPEG", quality=90),
        "progressive JPEG": lambda: encode(photo(), "JPEG", quality=90, progressive=True),
        "PNG": lambda: encode(photo(), "PNG"),
        "WebP": lambda: encode(photo(), "WEBP", quality=80),
        "lossless WebP": lambda: encode(photo(), "WEBP", lossless=True),
    }
    cuts: list[tuple[str, int | float]] = [
        ("first 16 bytes", 16),
        ("first 100 bytes", 100),
        ("25%", 0.25),
        ("50%", 0.5),
        ("90%", 0.9),
        ("all but 10 bytes", -10),
    ]
    for fmt, make in sources.items():
        for label, cut in cuts:
            yield _img(f"{fmt} truncated: {label}", truncate(make, cut), INVALID_IMAGE, g)
    yield _img("JPEG without its EOI marker", truncate(sources["JPEG"], -2), INVALID_IMAGE, g)
    yield _img("PNG without its IEND chunk", truncate(sources["PNG"], -12), INVALID_IMAGE, g)
    yield _img("PNG cut after IHDR", truncate(sources["PNG"], 33), INVALID_IMAGE, g)


def corrupt() -> Iterator[Case]:
    """Damage inside otherwise well-formed files: corrupt is 422 `invalid_image` (README)."""
    g = "corrupt"
    jpeg = lambda: encode(photo(), "JPEG", quality=90)  # noqa: E731
    png = lambda: encode(photo(), "PNG")  # noqa: E731

    def bogus_dht(data: bytearray) -> None:
        at = data.index(b"\xff\xc4")
        data[at + 5 : at + 21] = b"\xff" * 16  # code counts that overflow the code space

    def sof_three_components_of_zero_size(data: bytearray) -> None:
        at = data.index(b"\xff\xc0")
        data[at + 10] = 0  # first component's sampling factors 0x0

    def png_bad_colour_type(data: bytearray) -> None:
        data[25] = 7
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))

    def png_bad_bit_depth(data: bytearray) -> None:
        data[24] = 3
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))

    rows: list[tuple[str, Payload, Expect]] = [
        # libjpeg recovers from broken entropy-coded data with grey blocks and a warning; the
        # README still calls a corrupt file 422, and a half-grey photo must not be judged.
        ("JPEG with corrupt Huffman data mid-scan", mutate(jpeg, corrupt_huffman), INVALID_IMAGE),
        (
            "JPEG with an EOI marker mid-scan",
            mutate(jpeg, marker_mid_scan(b"\xff\xd9")),
            INVALID_IMAGE,
        ),
        (
            "JPEG with a stray RST marker mid-scan",
            mutate(jpeg, marker_mid_scan(b"\xff\xd3")),
            INVALID_IMAGE,
        ),
        (
            "JPEG with a DHT marker mid-scan",
            mutate(jpeg, marker_mid_scan(b"\xff\xc4")),
            INVALID_IMAGE,
        ),
        ("JPEG with a bogus Huffman table", mutate(jpeg, bogus_dht), INVALID_IMAGE),
        (
            "JPEG with zero sampling factors",
            mutate(jpeg, sof_three_components_of_zero_size),
            INVALID_IMAGE,
        ),
        (
            "JPEG with a segment length past the end",
            jpeg_with_segments(b"\xff\xe1\xff\xff" + b"Exif\x00\x00"),
            INVALID_IMAGE,
        ),
        # Out of spec, yet libjpeg-turbo reads it without so much as a warning: nothing is lost.
        ("JPEG with a segment length of 1", jpeg_with_segments(b"\xff\xe5\x00\x01"), OK),
        # PNG: a chunk whose CRC fails is corrupt (libpng's default for critical chunks).
        (
            "PNG with a bad IHDR CRC",
            mutate(png, lambda d: d.__setitem__(29, d[29] ^ 0xFF)),
            INVALID_IMAGE,
        ),
        ("PNG with a bad IDAT CRC", mutate(png, flip_idat_crc), INVALID_IMAGE),
        ("PNG with corrupt IDAT zlib data", mutate(png, flip_idat_data), INVALID_IMAGE),
        ("PNG with colour type 7", mutate(png, png_bad_colour_type), INVALID_IMAGE),
        ("PNG with bit depth 3", mutate(png, png_bad_bit_depth), INVALID_IMAGE),
        (
            "PNG with no IDAT",
            PNG_SIG
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 96, 128, 8, 2, 0, 0, 0))
            + png_chunk(b"IEND", b""),
            INVALID_IMAGE,
        ),
        (
            "WebP with RIFF size past the end",
            mutate(
                lambda: encode(photo(), "WEBP"),
                lambda d: d.__setitem__(slice(4, 8), struct.pack("<I", 10**8)),
            ),
            INVALID_IMAGE,
        ),
        ("WebP VP8L header with junk bitstream", webp_lossless_declaring(96, 128), INVALID_IMAGE),
        ("PNG whose IDAT stream runs 50 MB past the image", png_extra_idat_data, OK),
    ]
    for name, payload, expect in rows:
        yield _img(name, payload, expect, g)


def dimensions() -> Iterator[Case]:
    g = "dimensions"
    rows: list[tuple[str, Payload, Expect]] = [
        ("1x1 JPEG", lambda: f.jpeg(1, 1), TOO_SMALL),
        ("1x1 PNG", lambda: f.png(1, 1), TOO_SMALL),
        ("1x1 WebP", lambda: f.webp(1, 1), TOO_SMALL),
        ("31x32 PNG", lambda: f.png(31, 32), TOO_SMALL),
        ("32x31 PNG", lambda: f.png(32, 31), TOO_SMALL),
        ("32x32 JPEG", lambda: f.jpeg(32, 32), OK),
        ("32x32 PNG", lambda: f.png(32, 32), OK),
        ("32x32 WebP", lambda: f.webp(32, 32), OK),
        ("tall 32x20000 PNG", lambda: f.png(32, 20000), OK),
        ("tall 32x20000 JPEG", lambda: f.jpeg(32, 20000), OK),
        ("wide 20000x32 JPEG", lambda: f.jpeg(20000, 32), OK),
        ("wide 16383x32 WebP", lambda: f.webp(16383, 32), OK),
        ("1x60000 PNG header", png_header_only(1, 60000), TOO_SMALL),
        ("PNG header declaring 0x0", png_header_only(0, 0), INVALID_IMAGE),
        ("PNG header declaring 60000x60000", png_header_only(60000, 60000), IMAGE_TOO_LARGE),
        (
            "PNG header declaring 2^31-1 square",
            png_header_only(2**31 - 1, 2**31 - 1),
            IMAGE_TOO_LARGE,
        ),
        # 7072^2 is just over the 50 MP default, 7071^2 just under: the latter is decoded (and
        # its few bytes of pixel data found short).
        ("PNG header declaring 7072x7072", png_header_only(7072, 7072, 0), IMAGE_TOO_LARGE),
        ("PNG header declaring 7071x7071", png_header_only(7071, 7071, 0), INVALID_IMAGE),
        (
            "JPEG header declaring 60000x60000",
            lambda: jpeg_declaring(60000, 60000),
            IMAGE_TOO_LARGE,
        ),
        (
            "JPEG header declaring 65535x65535",
            lambda: jpeg_declaring(65535, 65535),
            IMAGE_TOO_LARGE,
        ),
        ("JPEG header declaring 65535x1", lambda: jpeg_declaring(65535, 1), TOO_SMALL),
        (
            "WebP header declaring 16383x16383",
            webp_lossless_declaring(16383, 16383),
            IMAGE_TOO_LARGE,
        ),
        ("real 20000x20000 PNG (400 MP in 390 kB)", png_20000_square, IMAGE_TOO_LARGE),
    ]
    for name, payload, expect in rows:
        yield _img(name, payload, expect, g)


def modes() -> Iterator[Case]:
    """Every colour mode and coding variant a phone or an editor writes: all are photos, 200."""
    g = "modes and codings"
    p = photo

    def palette(bits: int) -> Callable[[], bytes]:
        return lambda: encode(
            p().convert("P", palette=Image.Palette.ADAPTIVE, colors=2**bits), "PNG", bits=bits
        )

    def transparent_palette() -> bytes:
        img = p().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        return encode(img, "PNG", transparency=0)

    rows: list[tuple[str, Payload]] = [
        ("PNG 1-bit black and white", lambda: encode(p().convert("1"), "PNG")),
        ("PNG 2-bit greyscale", lambda: png_grey_bits(2)),
        ("PNG 4-bit greyscale", lambda: png_grey_bits(4)),
        ("PNG 8-bit greyscale", lambda: encode(p().convert("L"), "PNG")),
        ("PNG greyscale + alpha", lambda: encode(p().convert("LA"), "PNG")),
        ("PNG palette 8-bit", palette(8)),
        ("PNG palette 4-bit", palette(4)),
        ("PNG palette 2-bit", palette(2)),
        ("PNG palette 1-bit", palette(1)),
        ("PNG palette with transparency", transparent_palette),
        ("PNG RGBA", lambda: encode(p().convert("RGBA"), "PNG")),
        ("PNG fully transparent RGBA", lambda: encode(Image.new("RGBA", (96, 128)), "PNG")),
        (
            "PNG 16-bit greyscale",
            lambda: encode(Image.fromarray(np.asarray(p().convert("L"), np.uint16) * 257), "PNG"),
        ),
        ("PNG 16-bit greyscale + alpha", lambda: png_16bit(4)),
        ("PNG 16-bit RGB", lambda: png_16bit(2)),
        ("PNG 16-bit RGBA", lambda: png_16bit(6)),
        (
            "PNG Adam7 interlaced 8-bit RGB",
            lambda: png_from_array(np.asarray(p()), color_type=2, bit_depth=8, adam7=True),
        ),
        ("PNG Adam7 interlaced 16-bit RGB", lambda: png_16bit(2, adam7=True)),
        ("APNG, 3 frames", animated("PNG")),
        ("PNG with an sRGB ICC profile", lambda: encode(p(), "PNG", icc_profile=srgb_profile())),
        (
            "PNG with a garbage iCCP chunk",
            png_with_chunks(png_chunk(b"iCCP", b"junk\x00\x00" + b"\x13\x37" * 50)),
        ),
        (
            "PNG with 5000 tEXt chunks",
            png_with_chunks(b"".join(png_chunk(b"tEXt", b"k\x00%d" % i) for i in range(5000))),
        ),
        ("PNG with its IDAT in 64-byte chunks", png_split_idat(64)),
        (
            "PNG with 1 MB of junk after IEND",
            with_trailing(lambda: encode(p(), "PNG"), b"\x00" * 1_000_000),
        ),
        ("JPEG greyscale", lambda: encode(p().convert("L"), "JPEG")),
        ("JPEG CMYK (Adobe)", lambda: encode(p().convert("CMYK"), "JPEG")),
        ("JPEG progressive", lambda: encode(p(), "JPEG", progressive=True)),
        ("JPEG optimised Huffman tables", lambda: encode(p(), "JPEG", optimize=True)),
        ("JPEG quality 1", lambda: encode(p(), "JPEG", quality=1)),
        ("JPEG 4:4:4 subsampling", lambda: encode(p(), "JPEG", subsampling=0)),
        ("JPEG with an sRGB ICC profile", lambda: encode(p(), "JPEG", icc_profile=srgb_profile())),
        ("JPEG with a garbage ICC profile", lambda: encode(p(), "JPEG", icc_profile=b"\x00" * 999)),
        ("JPEG with a 64 kB comment", jpeg_with_segments(segment(0xFE, b"c" * 65000))),
        ("JPEG with 2000 comment segments", jpeg_with_segments(segment(0xFE, b"hi") * 2000)),
        ("JPEG with 1 MB of junk after EOI", with_trailing(small_jpeg, b"\x00" * 1_000_000)),
        ("JPEG followed by a zip (polyglot)", with_trailing(small_jpeg, b"PK\x03\x04" * 256)),
        (
            "MPO (two JPEG frames, as stereo cameras save)",
            lambda: encode(p(), "MPO", save_all=True, append_images=[p(96, 128, 1)]),
        ),
        ("WebP lossy", lambda: encode(p(), "WEBP", quality=80)),
        ("WebP lossless", lambda: encode(p(), "WEBP", lossless=True)),
        ("WebP lossy with alpha", lambda: encode(p().convert("RGBA"), "WEBP")),
        ("WebP lossless with alpha", lambda: encode(p().convert("RGBA"), "WEBP", lossless=True)),
        ("WebP with an sRGB ICC profile", lambda: encode(p(), "WEBP", icc_profile=srgb_profile())),
        ("animated WebP, 3 frames", animated("WEBP")),
        ("animated WebP, 3 lossless frames", animated("WEBP", lossless=True)),
    ]
    for name, payload in rows:
        yield _img(name, payload, OK, g)
    yield _img(
        "PNG with a 64 MB zTXt bomb",
        png_with_chunks(ztxt_bomb()),
        INVALID_IMAGE,
        g,
        why="Pillow refuses text chunks that inflate past 1 MB; refusing is right",
    )


def exif() -> Iterator[Case]:
    g = "EXIF"
    # Lossless formats: with the orientation applied the model sees exactly the upright photo.
    for fmt in ("PNG", "WEBP"):
        reference = f"{fmt} upright, no EXIF (reference)"
        yield _img(reference, upright(fmt), OK, g)
        for orientation in range(1, 9):
            yield _img(
                f"{fmt} with EXIF orientation {orientation}",
                oriented(fmt, orientation),
                OK,
                g,
                same_as=reference,
            )
    for orientation in range(1, 9):
        yield _img(
            f"JPEG with EXIF orientation {orientation}", oriented("JPEG", orientation), OK, g
        )
    # Out-of-range orientations and broken EXIF blocks: the image is used as stored.
    exif_ok = b"Exif\x00\x00"
    rows: list[tuple[str, bytes]] = [
        ("orientation 0", tiff_ifd([(0x0112, 3, 1, short(0))])),
        ("orientation 9", tiff_ifd([(0x0112, 3, 1, short(9))])),
        ("orientation 65535", tiff_ifd([(0x0112, 3, 1, short(65535))])),
        (
            "big-endian orientation 6",
            tiff_ifd([(0x0112, 3, 1, short(6, big_endian=True))], big_endian=True),
        ),
        ("orientation as an ASCII string", tiff_ifd([(0x0112, 2, 4, b"six\x00")])),
        (
            "orientation with a count of 2^31",
            tiff_ifd([(0x0112, 3, 2**31 - 1, b"\x08\x00\x00\x00")]),
        ),
        ("an IFD that points at itself", tiff_ifd([(0x0112, 3, 1, short(6))], next_ifd=8)),
        ("an EXIF sub-IFD that points at itself", tiff_ifd([(0x8769, 4, 1, struct.pack("<I", 8))])),
        ("an IFD offset past the end", b"II*\x00" + struct.pack("<I", 0xFFFFFF00)),
        ("an IFD claiming 65535 entries", b"II*\x00\x08\x00\x00\x00\xff\xff"),
        ("only a TIFF header", b"II*\x00"),
        ("random bytes", bytes(random.Random(5).randrange(256) for _ in range(2000))),
    ]
    for name, tiff in rows:
        yield _img(f"JPEG EXIF: {name}", jpeg_with_exif(exif_ok + tiff), OK, g)
    yield _img("JPEG EXIF: without the Exif header", jpeg_with_exif(b"garbage" * 100), OK, g)
    yield _img(
        "JPEG with two EXIF blocks that disagree",
        jpeg_with_segments(
            segment(0xE1, exif_ok + tiff_ifd([(0x0112, 3, 1, short(6))]))
            + segment(0xE1, exif_ok + tiff_ifd([(0x0112, 3, 1, short(3))]))
        ),
        OK,
        g,
    )
    yield _img(
        "PNG with a garbage eXIf chunk",
        png_with_chunks(png_chunk(b"eXIf", b"MM\x00*\xff\xff\xff\xff" * 8)),
        OK,
        g,
    )
    yield _img(
        "tall 32x20000 JPEG rotated by EXIF orientation 6",
        lambda: encode(
            photo(32, 4000).resize((32, 20000)),
            "JPEG",
            exif=exif_ok + tiff_ifd([(0x0112, 3, 1, short(6))]),
        ),
        OK,
        g,
    )


def vins() -> Iterator[Case]:
    g = "VIN"
    spaced = " ".join(VIN)  # 33 characters
    valid = [
        ("VIN in lower case", VIN.lower()),
        ("VIN in mixed case", "Wdd2052041f123456"),
        ("VIN grouped with spaces", "WDD 205 204 1F 123456"),
        ("VIN grouped with dashes", "WDD-205204-1F-123456"),
        ("VIN with surrounding spaces", f"  {VIN}  "),
        ("VIN with a trailing newline", f"{VIN}\n"),
        ("VIN with tabs and CRLF", f"\t{VIN}\r\n"),
        ("VIN with en and em dashes", "WDD\u2013205204\u20141F123456"),
        ("VIN with no-break spaces", "WDD\u00a0205204\u00a01F123456"),
        ("VIN with ideographic spaces", "WDD\u3000205204\u30001F123456"),
        ("VIN spaced out to exactly 64 characters", spaced.ljust(64)),
        ("North-American VIN in lower case", NA_GLE.lower()),
    ]
    for name, vin in valid:
        yield Case(name, OK, g, image=small_jpeg, vin=vin)
    invalid = [
        ("VIN spaced out to 65 characters", spaced.ljust(65)),
        ("VIN of 16 characters", VIN[:-1]),
        ("VIN of 18 characters", VIN + "7"),
        ("VIN with I, O and Q", "WDD2O52041I12345Q"),
        ("VIN of only spaces", " " * 17),
        ("VIN of only dashes", "-" * 17),
        ("VIN with a NUL byte inside", VIN[:8] + "\x00" + VIN[9:]),
        ("VIN with a trailing NUL byte", VIN + "\x00"),
        ("VIN with \\x01", VIN[:16] + "\x01"),
        ("VIN with DEL", VIN[:16] + "\x7f"),
        ("VIN with backspaces", VIN + "\x08" * 3),
        ("VIN with an ANSI escape", "\x1b[31m" + VIN[:12]),
        ("VIN with CRLF and a header", f"{VIN}\r\nX-Injected: 1"),
        ("VIN with a zero-width space", VIN[:8] + "\u200b" + VIN[8:]),
        ("VIN with a byte-order mark", "\ufeff" + VIN),
        ("VIN with a right-to-left override", "\u202e" + VIN),
        ("VIN in full-width letters", "ＷＤＤ２０５２０４１Ｆ１２３４５６"),
        ("VIN with Cyrillic look-alikes", "WDD2052041F123456".replace("D", "\u0414", 1)),
        ("VIN with a long s (ſ upper-cases to S)", "WDD2052041F12345\u017f"),
        ("VIN with a Kelvin sign", "WDD2052041F12345\u212a"),
        ("VIN with a combining accent", "W\u0301DD2052041F12345"),
        ("VIN with Arabic-Indic digits", "WDD" + "٢٠٥٢٠٤" + "1F123456"),
        ("VIN with superscript digits", "WDD²05204¹F123456"),
        ("VIN with an emoji", "WDD2052041F1234🚗"),
        ("SQL injection as VIN", "' OR 1=1 --"),
        ("script tag as VIN", "<script>alert(1)</script>"),
        ("path traversal as VIN", "../../../../etc/passwd"),
        ("log4j lookup as VIN", "${jndi:ldap://127.0.0.1/a}"),
        ("format string as VIN", "%s%s%s%n%n%n%x%x%x"),
        ("JSON as VIN", '{"vin": "WDD2052041F123456"}'),
        ("North-American VIN with a wrong check digit", NA_GLE[:8] + "1" + NA_GLE[9:]),
        ("VIN of 10 kB", "A" * 10_000),
        ("VIN of 1000 kB", "W" * 1_000_000),
    ]
    for name, vin in invalid:
        yield Case(name, INVALID_VIN, g, image=small_jpeg, vin=vin)
    yield Case(
        "VIN empty",
        invalid_request("vin"),
        g,
        image=small_jpeg,
        vin="",
        why="an empty form field is a missing one (as tests/test_api.py has it)",
    )
    yield Case("VIN missing", invalid_request("vin"), g, image=small_jpeg, vin=None)
    yield Case("VIN of 2 MB", FIELD_TOO_LARGE, g, image=small_jpeg, vin="W" * 2_000_000)
    yield body_case(
        "VIN with invalid UTF-8",
        INVALID_VIN,
        lambda: multipart([vin_part(b"WDD2052041F12345\xff\xfe"), image_part()]),
        group=g,
    )
    yield body_case(
        "VIN in Latin-1",
        INVALID_VIN,
        lambda: multipart([vin_part("WDD2052041F12345é".encode("latin-1")), image_part()]),
        group=g,
    )


def top_ks() -> Iterator[Case]:
    g = "top_k"
    bad = [
        "-1",
        "0",
        "11",
        "1e9",
        "1000000000",
        "9" * 40,
        "3.5",
        "1e1",
        "abc",
        "NaN",
        "inf",
        "0x3",
        "true",
        "٣",
        "３",
        "3\x00",
        "-0.5",
    ]
    for value in bad:
        yield Case(
            f"top_k {value!r}",
            invalid_request("top_k"),
            g,
            image=small_jpeg,
            data=(("top_k", value),),
        )
    yield Case(
        "top_k of 2 MB",
        FIELD_TOO_LARGE,
        g,
        image=small_jpeg,
        data=(("top_k", "1" * 2_000_000),),
    )
    yield Case("top_k '1'", OK, g, image=small_jpeg, data=(("top_k", "1"),), top_k=1)
    yield Case("top_k '10'", OK, g, image=small_jpeg, data=(("top_k", "10"),), top_k=10)
    # An empty optional field is how an HTML form says "not given": the default applies.
    yield Case("top_k ''", OK, g, image=small_jpeg, data=(("top_k", ""),), top_k=3)


def fields() -> Iterator[Case]:
    g = "form fields"
    jpg = small_jpeg
    # Each field at most once. Taking the first or the last of two photos silently would let a
    # client (or a man in the middle of the portal) have one photo shown to the auditor and
    # another one judged; two VINs or two top_k values are as ambiguous. 422 names the field.
    yield Case(
        "two image parts",
        invalid_request("image"),
        g,
        image=jpg,
        files=(("image", ("other.jpg", lambda: f.jpeg(96, 128, seed=9), "image/jpeg")),),
    )
    yield Case(
        "two image parts, the second not an image",
        invalid_request("image"),
        g,
        image=jpg,
        files=(("image", ("b.jpg", b"not an image", "image/jpeg")),),
    )
    yield Case(
        "two vin parts, both valid",
        invalid_request("vin"),
        g,
        image=jpg,
        vin=[VIN, "WDD2050461F123456"],
    )
    yield Case("two vin parts, the same VIN", invalid_request("vin"), g, image=jpg, vin=[VIN, VIN])
    yield Case(
        "two top_k parts",
        invalid_request("top_k"),
        g,
        image=jpg,
        data=(("top_k", "3"), ("top_k", "5")),
    )
    yield Case("image missing", invalid_request("image"), g, image=None)
    yield Case("image and vin missing", invalid_request(), g, image=None, vin=None)
    yield Case(
        "image sent as a text field",
        invalid_request("image"),
        g,
        image=None,
        data=(("image", "/9j/4AAQSkZJRg=="),),
    )
    yield Case(
        "image part with an empty filename",
        invalid_request("image"),
        g,
        image=jpg,
        filename="",
        why="RFC 7578: without a filename the part is a text field",
    )
    yield Case(
        "vin sent as a file",
        invalid_request("vin"),
        g,
        image=jpg,
        vin=None,
        files=(("vin", ("vin.txt", VIN.encode(), "text/plain")),),
    )
    yield Case(
        "field names in upper case",
        invalid_request(),
        g,
        image=None,
        vin=None,
        data=(("VIN", VIN),),
        files=(("IMAGE", ("car.jpg", jpg, "image/jpeg")),),
    )
    yield Case("an unknown extra text field", OK, g, image=jpg, data=(("colour", "silver"),))
    yield Case(
        "an unknown extra file part",
        OK,
        g,
        image=jpg,
        files=(("thumbnail", ("t.jpg", jpg, "image/jpeg")),),
    )
    yield Case("an unknown field of 10 kB", OK, g, image=jpg, data=(("note", "x" * 10_000),))
    yield Case(
        "an unknown field of 2 MB",
        FIELD_TOO_LARGE,
        g,
        image=jpg,
        data=(("note", "x" * 2_000_000),),
    )
    yield Case(
        "100 unknown fields", OK, g, image=jpg, data=tuple((f"f{i}", "v") for i in range(100))
    )


def filenames() -> Iterator[Case]:
    g = "filenames"
    jpg = small_jpeg
    # A part header line is capped (python-multipart: 4 kB); a longer one is a malformed part.
    yield Case("filename of 10 kB", MALFORMED, g, image=jpg, filename="a" * 10_000 + ".jpg")
    yield Case("filename of 60 kB", MALFORMED, g, image=jpg, filename="b" * 60_000 + ".jpg")
    for name, filename in [
        ("filename of 1 kB", "c" * 1000 + ".jpg"),
        ("path traversal filename", "../../../../etc/passwd.jpg"),
        ("absolute Windows path filename", "C:\\Windows\\System32\\car.jpg"),
        ("filename with a NUL byte", "car\x00.php.jpg"),
        ("filename with quotes and semicolons", 'a"; name="vin.jpg'),
        ("filename with CRLF", "car\r\nContent-Type: text/html.jpg"),
        ("unicode filename", "Fahrzeug_äöü_車_🚗.jpg"),
        ("filename of only dots", ".."),
    ]:
        yield Case(name, OK, g, image=jpg, filename=filename)

    def raw_name(filename: bytes, extra: str = "") -> Callable[[], bytes]:
        def make() -> bytes:
            disposition = (
                b'Content-Disposition: form-data; name="image"; filename="'
                + filename
                + b'"'
                + extra.encode()
            )
            return multipart(
                [vin_part(), part([disposition, b"Content-Type: image/jpeg"], small_jpeg())]
            )

        return make

    yield body_case("filename with invalid UTF-8 bytes", OK, raw_name(b"\xff\xfe\xfd.jpg"), group=g)
    yield body_case(
        "filename in Latin-1", OK, raw_name("Fahrzeug_ä.jpg".encode("latin-1")), group=g
    )
    yield body_case(
        "RFC 5987 filename*",
        OK,
        raw_name(b"car.jpg", "; filename*=UTF-8''%E2%82%AC%20rates.jpg"),
        group=g,
    )


def bodies() -> Iterator[Case]:
    """Request bodies that are not, or not quite, multipart/form-data."""
    g = "multipart"
    good = valid_multipart
    mp = f"multipart/form-data; boundary={BOUNDARY}"

    def swap_boundary() -> bytes:
        return multipart([vin_part(), image_part()], boundary="another-boundary")

    def lf_only() -> bytes:
        return multipart([vin_part(), image_part()], newline=b"\n")

    def too_many_fields() -> bytes:
        extra = [part([f'Content-Disposition: form-data; name="f{i}"'], b"v") for i in range(1100)]
        return multipart([vin_part(), image_part(), *extra])

    rows: list[tuple[str, Expect, Callable[[], bytes], str | None]] = [
        (
            "JSON body",
            WRONG_BODY_TYPE,
            lambda: json.dumps({"vin": VIN, "image": "base64..."}).encode(),
            "application/json",
        ),
        (
            "url-encoded form",
            WRONG_BODY_TYPE,
            lambda: f"vin={VIN}&image=abc".encode(),
            "application/x-www-form-urlencoded",
        ),
        ("text/plain body", WRONG_BODY_TYPE, lambda: VIN.encode(), "text/plain"),
        ("a bare JPEG body", WRONG_BODY_TYPE, small_jpeg, "image/jpeg"),
        ("multipart body without a Content-Type", WRONG_BODY_TYPE, good, None),
        (
            "multipart body sent as multipart/mixed",
            WRONG_BODY_TYPE,
            good,
            f"multipart/mixed; boundary={BOUNDARY}",
        ),
        (
            "multipart body, gzip Content-Encoding",
            WRONG_BODY_TYPE,
            lambda: gzip.compress(good()),
            mp,
        ),
        ("multipart/form-data without a boundary", MALFORMED, good, "multipart/form-data"),
        (
            "multipart/form-data with an empty boundary",
            MALFORMED,
            good,
            "multipart/form-data; boundary=",
        ),
        ("body boundary differs from the declared one", MALFORMED, swap_boundary, mp),
        ("empty multipart body", MALFORMED, lambda: b"", mp),
        ("only the closing boundary", MALFORMED, lambda: f"--{BOUNDARY}--\r\n".encode(), mp),
        (
            "unterminated last part",
            MALFORMED,
            lambda: multipart([vin_part(), image_part()], close=False),
            mp,
        ),
        (
            "part headers never end",
            MALFORMED,
            lambda: f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="vin"\r\n'.encode(),
            mp,
        ),
        (
            "part without Content-Disposition",
            MALFORMED,
            lambda: multipart([part(["Content-Type: text/plain"], VIN.encode()), image_part()]),
            mp,
        ),
        (
            "part header line without a colon",
            MALFORMED,
            lambda: multipart([part(["this is not a header"], VIN.encode()), image_part()]),
            mp,
        ),
        (
            "Content-Disposition without a name",
            MALFORMED,
            lambda: multipart(
                [part(["Content-Disposition: form-data"], VIN.encode()), image_part()]
            ),
            mp,
        ),
        ("1102 parts", MALFORMED, too_many_fields, mp),
        (
            "a part with 20 header lines",
            MALFORMED,
            lambda: multipart(
                [
                    part(
                        [
                            *(f"X-H{i}: v" for i in range(19)),
                            'Content-Disposition: form-data; name="vin"',
                        ],
                        VIN.encode(),
                    ),
                    image_part(),
                ]
            ),
            mp,
        ),
        (
            "garbage after the closing boundary",
            OK,
            lambda: multipart([vin_part(), image_part()], epilogue=b"\x00garbage\xff" * 100),
            mp,
        ),
        # RFC 2046 lets a parser skip a preamble; python-multipart refuses one. HTTP clients never
        # send one, so refusing it as a malformed body is acceptable (never a 5xx).
        (
            "garbage before the first boundary",
            MALFORMED,
            lambda: multipart([vin_part(), image_part()], preamble=b"preamble junk\r\n" * 10),
            mp,
        ),
        ("quoted boundary parameter", OK, good, f'multipart/form-data; boundary="{BOUNDARY}"'),
        ("Content-Type in upper case", OK, good, f"MULTIPART/FORM-DATA; boundary={BOUNDARY}"),
        ("Content-Type with a charset", OK, good, f"{mp}; charset=utf-8"),
        (
            "boundary with every allowed special character",
            OK,
            lambda: multipart([vin_part(), image_part()], boundary="'()+_,-./:=?x"),
            'multipart/form-data; boundary="\'()+_,-./:=?x"',
        ),
        # RFC 2046 wants CRLF; a parser that reads bare LF is lenient, one that refuses is right.
        ("LF line endings instead of CRLF", MALFORMED, lf_only, mp),
    ]
    for name, expect, build, ctype in rows:
        headers: tuple[tuple[str, str], ...] = ()
        if "gzip" in name:
            headers = (("Content-Encoding", "gzip"),)
        yield body_case(name, expect, build, content_type=ctype, headers=headers, group=g)


def transport() -> Iterator[Case]:
    """Framing: Content-Length that lies, chunked bodies, Expect, sizes; and a few headers."""
    good = valid_multipart

    yield wire_case("valid request written by hand", OK, Wire((MP_TYPE, "{length}"), good))
    yield wire_case(
        "Content-Length 100 bytes short", MALFORMED, Wire((MP_TYPE, "{length-100}"), good)
    )
    yield wire_case(
        "Content-Length 100 bytes long, then the client closes",
        CLOSED,
        Wire((MP_TYPE, "{length+100}"), good, half_close=True),
    )
    yield wire_case(
        "Content-Length of 10^12 on a small body",
        PAYLOAD_TOO_LARGE,
        Wire((MP_TYPE, "Content-Length: 1000000000000"), good),
    )
    yield wire_case(
        "Content-Length not a number", PROTOCOL_ERROR, Wire((MP_TYPE, "Content-Length: abc"), good)
    )
    yield wire_case(
        "Content-Length negative", PROTOCOL_ERROR, Wire((MP_TYPE, "Content-Length: -1"), good)
    )
    yield wire_case(
        "two different Content-Lengths",
        PROTOCOL_ERROR,
        Wire((MP_TYPE, "{length}", "Content-Length: 5"), good),
    )
    yield wire_case(
        "chunked body", OK, Wire((MP_TYPE, "Transfer-Encoding: chunked"), lambda: chunked(good()))
    )
    yield wire_case(
        "chunked body in 7-byte chunks",
        OK,
        Wire((MP_TYPE, "Transfer-Encoding: chunked"), lambda: chunked(good(), 7)),
    )
    yield wire_case(
        "chunked and Content-Length together",
        PROTOCOL_ERROR,
        Wire((MP_TYPE, "Transfer-Encoding: chunked", "{length}"), lambda: chunked(good())),
    )
    yield wire_case(
        "chunk size not hex",
        PROTOCOL_ERROR,
        Wire((MP_TYPE, "Transfer-Encoding: chunked"), b"zz\r\nhello\r\n0\r\n\r\n"),
    )
    yield wire_case(
        "Expect: 100-continue",
        OK,
        Wire((MP_TYPE, "{length}", "Expect: 100-continue"), good, expect_continue=True),
    )

    # Size limits (RECOGNIZE_MAX_UPLOAD_BYTES, 20 MiB by default): the limit is inclusive.
    limit = 20 * 1024 * 1024

    def jpeg_of(size: int) -> Callable[[], bytes]:
        def make() -> bytes:
            data = small_jpeg()
            return data + b"\x00" * (size - len(data))  # junk after EOI is ignored

        return make

    g = "size"
    yield Case("image of exactly 20 MiB", OK, g, image=jpeg_of(limit))
    yield Case("image of 20 MiB + 1 byte", PAYLOAD_TOO_LARGE, g, image=jpeg_of(limit + 1))
    yield Case("image of 25 MB", PAYLOAD_TOO_LARGE, g, image=jpeg_of(25_000_000))
    yield wire_case(
        "chunked image of 21 MiB",
        PAYLOAD_TOO_LARGE,
        Wire(
            (MP_TYPE, "Transfer-Encoding: chunked"),
            lambda: chunked(
                multipart([vin_part(), image_part(jpeg_of(21 * 1024 * 1024)())]), 1024 * 1024
            ),
        ),
    )

    g = "headers"
    yield Case(
        "X-Request-ID of 128 characters",
        OK,
        g,
        image=small_jpeg,
        headers=(("X-Request-ID", "r" * 128),),
    )
    yield Case(
        "X-Request-ID of 1 kB",
        invalid_request("X-Request-ID"),
        g,
        image=small_jpeg,
        headers=(("X-Request-ID", "r" * 1024),),
        why="the id goes into every log line: kilobytes of it amplify logs",
    )
    yield Case(
        "X-Request-ID with a tab",
        invalid_request("X-Request-ID"),
        g,
        image=small_jpeg,
        headers=(("X-Request-ID", "audit\t42"),),
    )
    yield Case(
        "X-Request-ID with non-UTF-8 bytes",
        OK,
        g,
        image=small_jpeg,
        headers=(("X-Request-ID", b"audit-\xe9\xff"),),
        why="Latin-1 header bytes are legal HTTP; a 5xx for them is the server's fault",
    )
    yield Case(
        "X-Request-ID with UTF-8 text",
        OK,
        g,
        image=small_jpeg,
        headers=(("X-Request-ID", "prüfung-42".encode()),),
    )
    yield Case(
        "serve_multiplexed_model_id header",
        OK,
        g,
        image=small_jpeg,
        headers=(("serve_multiplexed_model_id", "other-model"),),
    )
    yield Case(
        "serve_multiplexed_model_id with non-UTF-8 bytes",
        OK,
        g,
        image=small_jpeg,
        headers=(("serve_multiplexed_model_id", b"\xff\xfe"),),
    )
    yield Case("a 64 kB header", OK, g, image=small_jpeg, headers=(("X-Junk", "j" * 65536),))
    yield Case("Accept: text/html", OK, g, image=small_jpeg, headers=(("Accept", "text/html"),))

    g = "method and path"
    yield Case("GET /recognize", NOT_ALLOWED, g, method="GET", image=None, vin=None)
    yield Case("PUT /recognize", NOT_ALLOWED, g, method="PUT", image=small_jpeg)
    yield Case("DELETE /recognize", NOT_ALLOWED, g, method="DELETE", image=None, vin=None)
    yield Case("POST /Recognize", NOT_FOUND, g, path="/Recognize", image=small_jpeg)
    yield Case(
        "POST /recognize/../v1/model",
        NOT_ALLOWED,
        g,
        path="/recognize/../v1/model",
        image=small_jpeg,
        why="the path is normalised to /v1/model, a GET-only route",
    )
    yield Case(
        "POST with the fields in the query string",
        invalid_request(),
        g,
        path=f"/recognize?vin={VIN}&top_k=3",
        image=None,
        vin=None,
        data=(("x", "1"),),
    )


def corpus() -> list[Case]:
    cases = [
        *not_images(),
        *other_formats(),
        *labels(),
        *truncations(),
        *corrupt(),
        *dimensions(),
        *modes(),
        *exif(),
        *vins(),
        *top_ks(),
        *fields(),
        *filenames(),
        *bodies(),
        *transport(),
    ]
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, duplicates
    assert set(KNOWN_GAPS) <= set(names), set(KNOWN_GAPS) - set(names)
    return [replace(c, known_gap=KNOWN_GAPS.get(c.name)) for c in cases]


_PROXY_HEADER_GAP = (
    "Ray Serve decodes these header bytes as UTF-8 and answers a plain-text 500 before the "
    "ingress sees the request: its HTTP proxy (ray/serve/_private/proxy.py, cluster layout) and "
    "its direct-ingress wrapper in the replica (replica.py, local layout) alike; in production "
    "the ingress controller in front must reject such headers"
)
# Cases whose right outcome the service cannot give from its own code today (see each reason).
KNOWN_GAPS: dict[str, str] = {
    "X-Request-ID with non-UTF-8 bytes": _PROXY_HEADER_GAP,
    "serve_multiplexed_model_id with non-UTF-8 bytes": _PROXY_HEADER_GAP,
}


# --- sending ------------------------------------------------------------------------------------


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


class Sender:
    """Sends corpus cases to the service: httpx for well-formed HTTP, a socket for the rest."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        url = httpx.URL(base_url)
        if url.host != "127.0.0.1":
            raise ValueError(f"hostile traffic goes to 127.0.0.1 only, not {url.host}")
        self.host, self.port = url.host, url.port or 80
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.client = httpx.Client(base_url=base_url, timeout=timeout, headers=self.auth)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, case: Case) -> Outcome:
        started = time.perf_counter()
        outcome = self._wire(case) if case.wire is not None else self._http(case)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _http(self, case: Case) -> Outcome:
        headers = dict(case.headers)
        if case.body is not None:
            if case.content_type is not None:
                headers["Content-Type"] = case.content_type
            # A body with no Content-Type: httpx adds none for raw content.
            r = self.client.request(
                case.method, case.path, content=materialize(case.body), headers=headers
            )
        else:
            data: dict[str, Any] = {}
            for key, value in case.data:
                data.setdefault(key, []).append(value)
            if case.vin is not None:
                data["vin"] = case.vin
            files: list[tuple[str, Any]] = []
            if case.image is not None:
                files.append(("image", (case.filename, materialize(case.image), case.image_type)))
            for name, (filename, payload, ctype) in case.files:
                files.append((name, (filename, materialize(payload), ctype)))
            if not files:
                # httpx sends url-encoded without files: keep every form case multipart.
                files.append(("__empty", (None, b"", None)))
            r = self.client.request(case.method, case.path, data=data, files=files, headers=headers)
        return Outcome(r.status_code, dict(r.headers), r.content)

    def _wire(self, case: Case) -> Outcome:
        assert case.wire is not None
        wire = case.wire
        body = materialize(wire.body)
        lines = [
            f"{case.method} {case.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Connection: close",
        ]
        lines += [f"{k}: {v}" for k, v in self.auth.items()]
        for line in wire.head:
            if line.startswith("{length"):
                delta = int(line[len("{length") : -1] or 0)
                line = f"Content-Length: {len(body) + delta}"
            lines.append(line)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            if wire.expect_continue:
                sock.sendall(head)
                interim = sock.recv(65536)
                if not interim.startswith(b"HTTP/1.1 100"):
                    return parse_response(interim + read_all(sock))
                sock.sendall(body)
            else:
                # The server may answer early (413) and close: then read what it said.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(head + body)
            if wire.half_close:
                sock.shutdown(socket.SHUT_WR)
            return parse_response(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def parse_response(data: bytes) -> Outcome:
    """The first final response in ``data`` (interim 1xx responses skipped)."""
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if 100 <= status < 200:
            data = rest
            continue
        if headers.get("transfer-encoding", "").lower() == "chunked":
            rest = _dechunk(rest)
        elif "content-length" in headers:
            rest = rest[: int(headers["content-length"])]
        return Outcome(status, headers, rest)
    return Outcome(0)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


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
