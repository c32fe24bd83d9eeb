"""Imaging: formats by content, every mode to RGB, EXIF orientation, draft decode, limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from loadtest import photos as f
from service.core.errors import ImageTooLarge, ImageTooSmall, InvalidImage, UnsupportedMedia
from service.core.imaging import Limits, decode_image, prepare_image, sniff_format, to_rgb
from tests import hostile

LIMITS = Limits(max_pixels=50_000_000, min_side=32)


def prepared(data: bytes, size: int = 224) -> np.ndarray:
    return prepare_image(data, size=size, interpolation="bicubic", limits=LIMITS).array


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (f.jpeg(64, 64), "JPEG"),
        (f.png(64, 64), "PNG"),
        (f.webp(64, 64), "WEBP"),
        (f.encode(f.photo_like(64, 64), "GIF"), "GIF"),
        (f.encode(f.photo_like(64, 64), "TIFF"), "TIFF"),
        (f.encode(f.photo_like(64, 64), "BMP"), "BMP"),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff_format_reads_magic_bytes(data: bytes, expected: str | None) -> None:
    assert sniff_format(data) == expected


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_give_uint8_square_rgb(fmt: str) -> None:
    data = f.encode(f.photo_like(300, 500), fmt)
    out = prepare_image(data, size=224, interpolation="bicubic", limits=LIMITS)
    assert out.array.shape == (224, 224, 3)
    assert out.array.dtype == np.uint8
    assert out.array.flags["C_CONTIGUOUS"]
    assert out.format == fmt
    assert out.original_size == (300, 500)
    assert out.array.std() > 10  # content survived, not a blank frame


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP"])
def test_other_real_images_are_unsupported_media(fmt: str) -> None:
    with pytest.raises(UnsupportedMedia, match=fmt):
        prepared(f.encode(f.photo_like(64, 64), fmt))


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"<html><body>hi</body></html>", b"\xff\xd8\xff" + b"\0" * 50],
)
def test_non_images_and_garbage_are_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage) as err:
        prepared(data)
    assert err.value.code == "invalid_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_invalid(fmt: str) -> None:
    data = f.encode(f.photo_like(200, 200), fmt)
    with pytest.raises(InvalidImage, match="truncated"):
        prepared(data[: len(data) // 2])


def test_png_named_as_jpeg_is_judged_by_content() -> None:
    # Content wins: PNG bytes are a PNG, whatever the file name or the declared type says.
    assert prepared(f.png(100, 100)).shape == (224, 224, 3)


def test_pixel_limit_refuses_decompression_bombs_before_decoding() -> None:
    # A 20000x20000 PNG of one colour is a few hundred KB but 400 MP once decoded.
    img = Image.new("L", (20000, 20000))
    data = f.encode(img, "PNG", optimize=False)
    assert len(data) < 2_000_000
    with pytest.raises(ImageTooLarge, match="400000000 pixels"):
        prepared(data)


def test_small_images_are_refused_with_their_size() -> None:
    with pytest.raises(ImageTooSmall, match="20x100"):
        prepared(f.png(20, 100))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "PA", "RGBA", "CMYK", "I;16", "I", "1", "RGB"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    base = f.photo_like(64, 48)
    if mode in ("I;16", "I"):
        grey = np.asarray(base.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        img = Image.fromarray(grey.astype(np.uint16 if mode == "I;16" else np.int32))
        assert img.mode == mode
    else:
        img = base.convert(mode)
    rgb = to_rgb(img)
    assert rgb.mode == "RGB"
    assert rgb.size == (64, 48)
    arr = np.asarray(rgb)
    assert arr.max() > 100  # 16-bit scaled down, not clipped to black/white


def test_sixteen_bit_png_keeps_its_tones() -> None:
    grey = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    data = f.encode(Image.fromarray(grey), "PNG")
    rgb, _, _ = decode_image(data, target_size=64, limits=LIMITS)
    arr = np.asarray(rgb)[..., 0].astype(int)
    expected = grey.astype(int) >> 8
    assert np.abs(arr - expected).max() <= 1


def test_transparency_is_flattened_onto_white() -> None:
    img = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    rgb = to_rgb(img)
    assert np.asarray(rgb)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    upright = f.photo_like(120, 80, seed=3)  # landscape, asymmetric content
    data = f.with_orientation(upright, orientation)
    rgb, _, _ = decode_image(data, target_size=256, limits=LIMITS)  # no draft scaling
    assert rgb.size == (120, 80)
    diff = np.abs(np.asarray(rgb, dtype=int) - np.asarray(upright, dtype=int)).mean()
    assert diff < 8, f"orientation {orientation} not undone (mean diff {diff:.1f})"


def test_broken_exif_is_ignored() -> None:
    data = f.encode(f.photo_like(100, 100), "JPEG", exif=b"Exif\x00\x00garbage-garbage")
    assert prepared(data).shape == (224, 224, 3)


def test_draft_decode_matches_full_decode() -> None:
    data = f.jpeg(4032, 3024, seed=5)
    drafted = prepared(data)
    full = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    diff = np.abs(drafted.astype(int) - np.asarray(full, dtype=int))
    assert diff.mean() < 3.0, diff.mean()
    # and the draft really decoded at reduced scale
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (224, 224))
    assert img.size[0] < 4032


def test_animated_webp_uses_first_frame() -> None:
    frames = [f.photo_like(64, 64, seed=s) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    rgb, fmt, _ = decode_image(buf.getvalue(), target_size=64, limits=LIMITS)
    assert fmt == "WEBP"
    assert np.abs(np.asarray(rgb, dtype=int) - np.asarray(frames[0], dtype=int)).mean() < 2


def test_png_with_a_corrupted_chunk_is_invalid() -> None:
    data = bytearray(f.png(100, 100))
    idat = data.index(b"IDAT")
    data[idat + 40] ^= 0xFF  # flip bits inside the compressed pixels
    with pytest.raises(InvalidImage, match="'IDAT' fails its CRC"):
        prepared(bytes(data))


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"  <svg width='10' height='10'></svg>", "SVG"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\0" * 40, "JPEG 2000"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\0" * 40, "JPEG XL"),
    ],
)
def test_other_image_formats_are_named_in_a_415(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedMedia, match=name):
        prepared(data)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(hostile.corrupt_huffman, id="corrupt Huffman data"),
        pytest.param(hostile.marker_mid_scan(b"\xff\xd9"), id="EOI mid-scan"),
        pytest.param(hostile.marker_mid_scan(b"\xff\xd3"), id="stray RST mid-scan"),
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_corrupt_jpeg_scan_data_is_refused_not_decoded_to_grey(damage, mode: str) -> None:  # type: ignore[no-untyped-def]
    # A lenient decoder (Pillow's libjpeg) recovers these with grey blocks and a warning. Strict
    # decoding refuses what libjpeg notices (a scan that ends early or late, a marker inside);
    # random bytes that happen to decode as a whole scan are beyond any decoder.
    data = bytearray(f.encode(f.photo_like(320, 240).convert(mode), "JPEG", quality=90))
    damage(data)
    with pytest.raises(InvalidImage, match="JPEG image is corrupt"):
        prepared(bytes(data))


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_every_jpeg_mode_decodes_to_the_same_rgb_as_pillow(mode: str) -> None:
    image = f.photo_like(320, 240).convert(mode)
    data = f.encode(image, "JPEG", quality=95)
    ours = prepared(data).astype(int)
    reference = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BICUBIC)
    # Same libjpeg-turbo underneath; DCT scaling and upsampling may differ by a few levels.
    assert np.abs(ours - np.asarray(reference, dtype=int)).mean() < 3.0
