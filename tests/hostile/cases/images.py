"""Cases about the image itself: not an image, other formats, names and declared types,
truncated and corrupt files, dimensions and pixel bombs, colour modes and codings, EXIF."""

from __future__ import annotations

import base64
import gzip
import json
import random
import struct
import zlib
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from loadtest import photos
from loadtest.photos import encode
from tests.hostile.case import VIN, Case, Payload, image_case
from tests.hostile.checker import IMAGE_TOO_LARGE, INVALID_IMAGE, OK, TOO_SMALL, UNSUPPORTED, Expect
from tests.hostile.images import (
    PNG_SIG,
    animated,
    corrupt_huffman,
    flip_idat_crc,
    flip_idat_data,
    jpeg_declaring,
    jpeg_with_exif,
    jpeg_with_segments,
    marker_mid_scan,
    mutate,
    oriented,
    photo,
    png_16bit,
    png_20000_square,
    png_chunk,
    png_extra_idat_data,
    png_from_array,
    png_grey_bits,
    png_header_only,
    png_split_idat,
    png_with_chunks,
    riff,
    segment,
    short,
    small_jpeg,
    srgb_profile,
    tiff_ifd,
    truncate,
    upright,
    webp_chunk,
    webp_lossless_declaring,
    with_trailing,
    ztxt_bomb,
)


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
        yield image_case(name, payload, expect, g)


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
        yield image_case(name, payload, UNSUPPORTED, g)
    yield image_case(
        "GIF named car.jpg as image/jpeg", lambda: encode(photo(), "GIF"), UNSUPPORTED, g
    )
    yield image_case(
        "TIFF named car.png as image/png",
        lambda: encode(photo(), "TIFF"),
        UNSUPPORTED,
        g,
        filename="car.png",
        image_type="image/png",
    )
    yield image_case(
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
        yield image_case(name, payload, expect, g, filename=filename, image_type=ctype)


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
            yield image_case(f"{fmt} truncated: {label}", truncate(make, cut), INVALID_IMAGE, g)
    yield image_case("JPEG without its EOI marker", truncate(sources["JPEG"], -2), INVALID_IMAGE, g)
    yield image_case("PNG without its IEND chunk", truncate(sources["PNG"], -12), INVALID_IMAGE, g)
    yield image_case("PNG cut after IHDR", truncate(sources["PNG"], 33), INVALID_IMAGE, g)


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
        yield image_case(name, payload, expect, g)


def dimensions() -> Iterator[Case]:
    g = "dimensions"
    rows: list[tuple[str, Payload, Expect]] = [
        ("1x1 JPEG", lambda: photos.jpeg(1, 1), TOO_SMALL),
        ("1x1 PNG", lambda: photos.png(1, 1), TOO_SMALL),
        ("1x1 WebP", lambda: photos.webp(1, 1), TOO_SMALL),
        ("31x32 PNG", lambda: photos.png(31, 32), TOO_SMALL),
        ("32x31 PNG", lambda: photos.png(32, 31), TOO_SMALL),
        ("32x32 JPEG", lambda: photos.jpeg(32, 32), OK),
        ("32x32 PNG", lambda: photos.png(32, 32), OK),
        ("32x32 WebP", lambda: photos.webp(32, 32), OK),
        ("tall 32x20000 PNG", lambda: photos.png(32, 20000), OK),
        ("tall 32x20000 JPEG", lambda: photos.jpeg(32, 20000), OK),
        ("wide 20000x32 JPEG", lambda: photos.jpeg(20000, 32), OK),
        ("wide 16383x32 WebP", lambda: photos.webp(16383, 32), OK),
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
        yield image_case(name, payload, expect, g)


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
        yield image_case(name, payload, OK, g)
    yield image_case(
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
        yield image_case(reference, upright(fmt), OK, g)
        for orientation in range(1, 9):
            yield image_case(
                f"{fmt} with EXIF orientation {orientation}",
                oriented(fmt, orientation),
                OK,
                g,
                same_as=reference,
            )
    for orientation in range(1, 9):
        yield image_case(
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
        yield image_case(f"JPEG EXIF: {name}", jpeg_with_exif(exif_ok + tiff), OK, g)
    yield image_case("JPEG EXIF: without the Exif header", jpeg_with_exif(b"garbage" * 100), OK, g)
    yield image_case(
        "JPEG with two EXIF blocks that disagree",
        jpeg_with_segments(
            segment(0xE1, exif_ok + tiff_ifd([(0x0112, 3, 1, short(6))]))
            + segment(0xE1, exif_ok + tiff_ifd([(0x0112, 3, 1, short(3))]))
        ),
        OK,
        g,
    )
    yield image_case(
        "PNG with a garbage eXIf chunk",
        png_with_chunks(png_chunk(b"eXIf", b"MM\x00*\xff\xff\xff\xff" * 8)),
        OK,
        g,
    )
    yield image_case(
        "tall 32x20000 JPEG rotated by EXIF orientation 6",
        lambda: encode(
            photo(32, 4000).resize((32, 20000)),
            "JPEG",
            exif=exif_ok + tiff_ifd([(0x0112, 3, 1, short(6))]),
        ),
        OK,
        g,
    )
