"""Cases about the request around the form: bodies that are not (quite) multipart, framing on
the wire (Content-Length, chunked, Expect), sizes, headers, methods and paths."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator

from tests.hostile.case import BOUNDARY, VIN, Case, Wire, body_case, wire_case
from tests.hostile.checker import (
    CLOSED,
    MALFORMED,
    NOT_ALLOWED,
    NOT_FOUND,
    OK,
    PAYLOAD_TOO_LARGE,
    PROTOCOL_ERROR,
    WRONG_BODY_TYPE,
    Expect,
    invalid_request,
)
from tests.hostile.images import small_jpeg
from tests.hostile.multipart import (
    MP_TYPE,
    chunked,
    image_part,
    multipart,
    part,
    valid_multipart,
    vin_part,
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
