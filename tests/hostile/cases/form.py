"""Cases about the form's other fields: hostile VINs, top_k values, duplicated, missing and
unknown fields, filenames."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from loadtest import photos
from tests.hostile.case import NA_GLE, VIN, Case, body_case
from tests.hostile.checker import FIELD_TOO_LARGE, INVALID_VIN, MALFORMED, OK, invalid_request
from tests.hostile.images import small_jpeg
from tests.hostile.multipart import image_part, multipart, part, vin_part


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
        why="an empty form field is a missing one (as tests/integration/test_api.py has it)",
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
        files=(("image", ("other.jpg", lambda: photos.jpeg(96, 128, seed=9), "image/jpeg")),),
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
