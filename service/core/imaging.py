"""Photo bytes → model input: decode, orient, convert to RGB, resize. Pure Pillow + numpy.

The model's own metadata fixes the input size and interpolation; the aspect ratio is not kept
(training squashed both edges to the same square size: section 4.3 of the thesis behind
Recognize, Grundmann, "Comparing Vision Transformers to Traditional Deep Learning Object
Classification Architectures for Automotive Make and Model Recognition", 2023).
"""

from __future__ import annotations

import io
import time
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from service.core.errors import ImageTooLarge, ImageTooSmall, InvalidImage, UnsupportedMedia

# Pillow's own bomb guard is replaced by an explicit, configurable check in `decode_image`;
# its warning must never be the only thing standing between us and a huge allocation.
Image.MAX_IMAGE_PIXELS = None

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
# Image formats we recognise but do not accept: a clear 415 beats a vague "not an image".
_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"BM", 0, "BMP"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypavif", 4, "AVIF"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"8BPS", 0, "PSD"),
    (b"%PDF", 0, "PDF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "JPEG XL"),
    (b"\xff\x0a", 0, "JPEG XL"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading magic bytes, or None if unrecognised."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, offset, name in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return name
    head = data[:1024].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def check_png_chunks(data: bytes) -> None:
    """Every PNG chunk's CRC, and the IEND chunk that ends a whole file.

    Pillow checks the header's CRC only, so a corrupted or cut-off image would otherwise be
    decoded with garbage or missing rows and classified as if it were the photo.
    """
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            break
        kind = data[pos + 4 : pos + 8]
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            raise InvalidImage(f"PNG chunk {kind.decode('latin-1')!r} fails its CRC check")
        if kind == b"IEND":
            return
        pos = end
    raise InvalidImage("PNG image is truncated (no IEND chunk)")


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    min_side: int


@dataclass(frozen=True)
class PreparedImage:
    """The model input plus what the response reports about the photo."""

    array: np.ndarray  # uint8 [size, size, 3], C-contiguous
    original_size: tuple[int, int]  # (width, height) as uploaded, before orientation
    format: str
    decode_s: float
    preprocess_s: float


def decode_image(
    data: bytes, *, target_size: int, limits: Limits
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode to an upright RGB image, using JPEG draft mode to skip resolution we don't need."""
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage("image is not a JPEG, PNG or WebP file (unrecognised content)")
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedMedia(f"image format {fmt} is not supported; send JPEG, PNG or WebP")
    if fmt == "PNG":
        check_png_chunks(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            _check_dimensions(width, height, limits)
            if fmt == "JPEG":
                img = _decode_jpeg_strictly(data, img, target_size)
            else:
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)  # animated WebP: the first frame is the photo
                img.load()
            img = _upright(img)
            rgb = to_rgb(img)
    except (ImageTooLarge, ImageTooSmall, InvalidImage):
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"image could not be decoded as {fmt}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        # Truncated files, corrupt chunks and broken headers all surface as one of these.
        raise InvalidImage(f"{fmt} image is corrupt or truncated: {exc}") from exc
    return rgb, fmt, (width, height)


def _decode_jpeg_strictly(data: bytes, img: Image.Image, target_size: int) -> Image.Image:
    """Decode with libjpeg-turbo in strict mode: corrupt scan data is an error, not grey blocks.

    Pillow's libjpeg recovers from broken entropy-coded data with a warning it never raises,
    and the half-grey photo would be judged as if it were the car. The pixels are decoded once,
    scaled down by 1/2, 1/4 or 1/8 in the DCT while staying >= the model's input size (a 12 MP
    phone photo then costs a fraction of a full decode): RGB for colour and greyscale, CMYK as
    stored (Pillow converts it, knowing Adobe's inverted CMYK). ``img`` is the header Pillow
    parsed (mode, EXIF, Adobe marker); it decodes nothing itself.

    Measured on this 2-core machine (460x706 JPEG, CPU time per image): decode 1.23 ms, the
    copy into Pillow 0.06 ms, resize 0.78 ms. Decoding into RGBX instead, which Pillow wraps
    without a copy, cost 1.47 + 0.96 ms (libjpeg-turbo writes a fourth byte, Pillow resizes
    four channels): the copy is the cheaper way. CMYK was decoded twice before (a strict check,
    then Pillow's own decode): 8.7 -> 4.8 ms at 460x706, 301 -> 122 ms at 12 MP.
    """
    cmyk = img.mode == "CMYK"
    try:
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace="CMYK" if cmyk else "RGB",
            strict=True,
            min_height=target_size,
            min_width=target_size,
        )
    except ValueError as exc:
        raise InvalidImage(f"JPEG image is corrupt or truncated: {exc}") from exc
    if cmyk and "adobe" in img.info:
        # Photoshop writes Adobe CMYK inverted (Pillow reads it as "CMYK;I" for the same reason).
        np.subtract(255, pixels, out=pixels)
    decoded = Image.fromarray(pixels, "CMYK" if cmyk else "RGB")
    decoded.info = dict(img.info)  # EXIF (orientation) travels with the pixels
    return decoded


def _check_dimensions(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image has {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise ImageTooSmall(
            f"image is {width}x{height} pixels; each side must be at least {limits.min_side}"
        )


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - EXIF parsers raise many types on hostile data
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is flattened onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale (PNG): scale to 8 bits instead of letting Pillow clip at 255.
        wide = np.asarray(img, dtype=np.uint32)
        grey = np.clip(wide >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode == "F":
        grey = np.clip(np.asarray(img, dtype=np.float32), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        img.mode == "P" and "transparency" in img.info
    ):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_to_input(img: Image.Image, *, size: int, interpolation: str) -> np.ndarray:
    """Squash to size x size (aspect ratio not kept) and return a uint8 RGB HWC array."""
    resample = _RESAMPLE[interpolation]
    if img.size != (size, size):
        # reducing_gap first box-reduces by an integer factor: much faster on big PNGs and
        # indistinguishable from a full bicubic pass at these ratios.
        img = img.resize((size, size), resample, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def prepare_image(data: bytes, *, size: int, interpolation: str, limits: Limits) -> PreparedImage:
    """Bytes → uint8 [size, size, 3] model input, timing decode and resize separately."""
    start = time.perf_counter()
    rgb, fmt, original_size = decode_image(data, target_size=size, limits=limits)
    decoded = time.perf_counter()
    array = resize_to_input(rgb, size=size, interpolation=interpolation)
    done = time.perf_counter()
    return PreparedImage(
        array=array,
        original_size=original_size,
        format=fmt,
        decode_s=decoded - start,
        preprocess_s=done - decoded,
    )
