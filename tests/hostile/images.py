"""Forged image bytes: real encodings of a small test photo, and files taken apart and put
together by hand (PNG chunks, JPEG segments, RIFF/WebP headers, TIFF/EXIF blocks), cut short or
corrupted on purpose."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from PIL import Image, ImageCms

from loadtest.photos import encode, jpeg, photo_like, with_orientation

PNG_SIG = b"\x89PNG\r\n\x1a\n"


@cache
def small_jpeg() -> bytes:
    return jpeg(96, 128)


@cache
def photo(width: int = 96, height: int = 128, seed: int = 0) -> Image.Image:
    return photo_like(width, height, seed)


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
    data = bytearray(jpeg(64, 64))
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


def oriented(fmt: str, orientation: int) -> Callable[[], bytes]:
    """The upright test photo stored turned, with the EXIF orientation that turns it back."""
    params = {"lossless": True} if fmt == "WEBP" else {}
    return lambda: with_orientation(photo(96, 160, seed=3), orientation, fmt, **params)


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
