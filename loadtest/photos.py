"""Photos made on the spot, as real JPEG/PNG/WebP encodings (no data set ships): the one photo
factory of the load test, the benchmarks and the tests.

Two pictures, for two needs:

- ``photo_like``: a smooth gradient with Gaussian noise from a seeded numpy generator, so the
  same seed gives the same pixels (tests that compare decoded pixels or predictions need that);
- ``photo_image``: a dealer photo's look (gradient sky and ground, a car-like body, clutter,
  sensor noise), drawn by Pillow's C code so that even a 12 MP phone photo takes well under a
  second. Pillow's noise is not seeded: sizes and shapes follow ``rng``, the noise does not.

Both compress like photographs, not like a flat colour. Dealer photos average about 460x706
(width x height), the size of the photos in the thesis's data set ("Comparing Vision
Transformers to Traditional Deep Learning Object Classification Architectures for Automotive
Make and Model Recognition"), with +-25 % spread.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

DEALER_SIZE = (460, 706)  # mean width x height of the thesis's photos
PHONE_SIZE = (4032, 3024)  # a 12 MP phone photo, stored landscape
EXIF_ORIENTATION = 0x0112

# The inverse of what a viewer applies for each EXIF orientation (1 and others: none).
_UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    content_type: str
    width: int
    height: int
    kind: str  # "dealer" or "phone"


# --- pictures --------------------------------------------------------------------------------


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth gradient with noise: compresses like a photo, not like a flat colour; the same
    seed gives the same pixels."""
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


def photo_image(width: int, height: int, rng: random.Random, noise: float = 9.0) -> Image.Image:
    """An RGB picture with a photo's statistics: gradient sky and ground, a car-like body, noise."""
    top = tuple(rng.randint(90, 230) for _ in range(3))
    bottom = tuple(rng.randint(20, 140) for _ in range(3))
    # A 2-pixel-wide vertical gradient stretched by Pillow: smooth, and free to compute.
    column = Image.new("RGB", (1, 256))
    column.putdata(
        [
            tuple(int(t + (b - t) * y / 255) for t, b in zip(top, bottom, strict=True))
            for y in range(256)
        ]
    )
    img = column.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    # A car: body, cabin and two wheels, at a random place and scale.
    scale = rng.uniform(0.55, 0.9)
    car_w, car_h = int(width * scale), int(height * scale * 0.35)
    x0 = rng.randint(0, max(0, width - car_w))
    y0 = rng.randint(height // 3, max(height // 3, height - car_h - 1))
    paint = tuple(rng.randint(0, 255) for _ in range(3))
    draw.rounded_rectangle(
        (x0, y0 + car_h // 3, x0 + car_w, y0 + car_h), radius=max(1, car_h // 6), fill=paint
    )
    draw.polygon(
        [
            (x0 + car_w // 5, y0 + car_h // 3),
            (x0 + car_w // 3, y0),
            (x0 + 2 * car_w // 3, y0),
            (x0 + 4 * car_w // 5, y0 + car_h // 3),
        ],
        fill=tuple(max(0, c - 40) for c in paint),
    )
    wheel = max(2, car_h // 3)
    for cx in (x0 + car_w // 5, x0 + 4 * car_w // 5):
        draw.ellipse(
            (cx - wheel, y0 + car_h - wheel, cx + wheel, y0 + car_h + wheel), fill=(15,) * 3
        )
    # Background clutter: other cars, signs, windows of the showroom.
    for _ in range(rng.randint(4, 12)):
        bx, by = rng.randint(0, width), rng.randint(0, height)
        bw, bh = (
            rng.randint(width // 20 + 1, width // 4 + 2),
            rng.randint(height // 20 + 1, height // 5 + 2),
        )
        draw.rectangle(
            (bx, by, bx + bw, by + bh), fill=tuple(rng.randint(0, 255) for _ in range(3))
        )
    # Sensor noise, one independent field per channel, centred on 128 and added around zero.
    seed_noise = [Image.effect_noise((width, height), noise) for _ in range(3)]
    return ImageChops.add(img, Image.merge("RGB", seed_noise), scale=1.0, offset=-128)


# --- encodings -------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """``img`` in ``fmt`` with Pillow's ``params``; a JPEG of a mode JPEG cannot hold is RGB."""
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


def stored_for_orientation(img: Image.Image, orientation: int) -> Image.Image:
    """The pixels as a camera stores them when a viewer applying EXIF ``orientation`` shows
    ``img`` upright."""
    undo = _UNDO_ORIENTATION.get(orientation)
    return img.transpose(undo) if undo is not None else img


def with_orientation(
    img: Image.Image, orientation: int, fmt: str = "JPEG", **params: object
) -> bytes:
    """``img`` stored rotated/flipped, with the EXIF tag that undoes it (JPEG: quality 95)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    if fmt == "JPEG":
        params.setdefault("quality", 95)
    return encode(stored_for_orientation(img, orientation), fmt, exif=exif.tobytes(), **params)


# --- dealer and phone photos -----------------------------------------------------------------


def dealer_size(rng: random.Random) -> tuple[int, int]:
    """A dealer photo's size: about 460x706 on average, each side within +-25 %."""
    width = round(DEALER_SIZE[0] * rng.uniform(0.75, 1.25))
    height = round(DEALER_SIZE[1] * rng.uniform(0.75, 1.25))
    return width, height


def dealer_jpeg(rng: random.Random, index: int = 0) -> Photo:
    width, height = dealer_size(rng)
    data = encode(
        photo_image(width, height, rng),
        "JPEG",
        quality=rng.choice((80, 85, 90, 92)),
        progressive=rng.random() < 0.3,
        optimize=False,
    )
    return Photo(f"dealer-{index}.jpg", data, "image/jpeg", width, height, "dealer")


def dealer_png(rng: random.Random, index: int = 0) -> Photo:
    width, height = dealer_size(rng)
    # compress_level 1: a portal re-encoding screenshots as PNG does not spend seconds on it.
    data = encode(photo_image(width, height, rng), "PNG", compress_level=1)
    return Photo(f"dealer-{index}.png", data, "image/png", width, height, "dealer")


def phone_jpeg(rng: random.Random, index: int = 0) -> Photo:
    """A full-resolution phone photo: 4032x3024 stored landscape, EXIF says turn it upright."""
    width, height = PHONE_SIZE
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = rng.choice((1, 6))
    data = encode(
        photo_image(width, height, rng, noise=6.0), "JPEG", quality=90, exif=exif.tobytes()
    )
    return Photo(f"phone-{index}.jpg", data, "image/jpeg", width, height, "phone")


def dealer_jpegs(count: int, seed: int = 0) -> list[Photo]:
    """``count`` dealer JPEGs, the benchmarks' uploads."""
    rng = random.Random(seed)
    return [dealer_jpeg(rng, i) for i in range(count)]
