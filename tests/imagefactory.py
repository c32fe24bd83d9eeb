"""Real image encodings made on the fly (no data set ships with the tests)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth gradient with noise: compresses like a photo, not like a flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(x / (width / 3.0) + seed),
            128 + 100 * np.cos(y / (height / 4.0) + seed),
            128 + 60 * np.sin((x + y) / (width / 5.0)),
        ],
        axis=-1,
    )
    noisy = base + rng.normal(0, 12, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def jpeg(width: int = 460, height: int = 706, seed: int = 0, **params: object) -> bytes:
    return encode(photo_like(width, height, seed), "JPEG", quality=90, **params)


def png(width: int = 460, height: int = 706, seed: int = 0) -> bytes:
    return encode(photo_like(width, height, seed), "PNG")


def webp(width: int = 460, height: int = 706, seed: int = 0) -> bytes:
    return encode(photo_like(width, height, seed), "WEBP", quality=85)


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    """A JPEG whose pixels are stored rotated/flipped, with the EXIF tag that undoes it."""
    stored = img
    # The inverse of what a viewer applies for each orientation value.
    inverse = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT],
        3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM],
        5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_90],
        7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_270],
    }
    for op in inverse.get(orientation, []):
        stored = stored.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())
