"""A hostile-input corpus for ``POST /recognize``, generated on the fly, and a client to send it.

Every case names the request (an image upload, a VIN, a form field, a hand-made multipart body,
or bytes straight onto the socket) and the outcome a demanding client expects from the README's
error table: a status and error code, or 200. Where several outcomes are defensible the choice
is made once, in ``checker.py``, with the reason beside it.

- ``case.py``: the corpus's unit (``Case``, ``Wire``) and its fixed values (a valid VIN, the
  boundary of hand-made bodies);
- ``images.py`` and ``multipart.py``: forged bytes (image files and multipart bodies made by
  hand; the photos themselves come from ``loadtest/photos.py``);
- ``cases/``: the corpus, grouped by what a case attacks (the image, the form, the transport);
- ``sender.py``: sends a case over httpx, or as raw bytes onto a socket;
- ``checker.py``: ``Expect``, ``Outcome`` and ``check``.

Payloads are built lazily (a few are megabytes) and cached, so the corpus can be listed at
collection time for free and sent several times (tests/integration/test_hostile_inputs.py).
"""

from tests.hostile.case import BOUNDARY, VIN, Case
from tests.hostile.cases import KNOWN_GAPS, corpus
from tests.hostile.checker import Expect, Outcome, check
from tests.hostile.images import corrupt_huffman, marker_mid_scan, small_jpeg
from tests.hostile.multipart import MP_TYPE, image_part, multipart, valid_multipart, vin_part
from tests.hostile.sender import Sender, parse_response, read_all

__all__ = [
    "BOUNDARY",
    "KNOWN_GAPS",
    "MP_TYPE",
    "VIN",
    "Case",
    "Expect",
    "Outcome",
    "Sender",
    "check",
    "corpus",
    "corrupt_huffman",
    "image_part",
    "marker_mid_scan",
    "multipart",
    "parse_response",
    "read_all",
    "small_jpeg",
    "valid_multipart",
    "vin_part",
]
