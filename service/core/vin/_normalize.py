"""Normalise VIN text and check its length and alphabet (ISO 3779, 49 CFR 565.4)."""

from __future__ import annotations

import re

from service.core.errors import InvalidVIN

VIN_LENGTH = 17
# Longer input is rejected before any work: no VIN, however generously spaced, needs more.
MAX_INPUT_LENGTH = 64
VIN_ALPHABET = frozenset("0123456789ABCDEFGHJKLMNPRSTUVWXYZ")

# People paste VINs grouped with spaces or dashes ("WDD 205 046-1F 123456").
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2014]")


def normalize_vin(text: str) -> str:
    """The VIN in canonical form: no spaces or dashes, upper case, 17 characters, no I/O/Q.

    Raises ``InvalidVIN`` naming the broken rule and the bad value.
    """
    if not isinstance(text, str):
        raise InvalidVIN(f"VIN must be text (got {type(text).__name__})")
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidVIN(
            f"VIN input must be at most {MAX_INPUT_LENGTH} characters (got {len(text)})"
        )
    compact = _SEPARATORS.sub("", text)
    if len(compact) != VIN_LENGTH:
        raise InvalidVIN(
            f"VIN must be {VIN_LENGTH} characters (got {len(compact)}: {compact.upper()!r})"
        )
    for position, char in enumerate(compact, start=1):
        # isascii() first: str.upper() maps some non-ASCII letters onto A-Z (U+017F -> 'S').
        if not (char.isascii() and char.isalnum()):
            raise InvalidVIN(
                f"VIN contains {char!r} at position {position}; "
                "VINs use only the digits 0-9 and the letters A-Z"
            )
    vin = compact.upper()
    for position, char in enumerate(vin, start=1):
        if char not in VIN_ALPHABET:
            raise InvalidVIN(
                f"VIN contains {char!r} at position {position}; VINs never use I, O or Q"
            )
    return vin


def mask_vin(text: str) -> str:
    """A VIN safe for logs: the serial number (positions 12-17) hidden, the model code kept.

    Works on anything a client sent, valid or not, and never echoes more than 17 characters.
    """
    cleaned = "".join(ch for ch in text.strip().upper() if ch.isalnum())[:17]
    return cleaned[:11] + "*" * max(0, len(cleaned) - 11)
