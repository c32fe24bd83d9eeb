"""The North-American check digit, VIN position 9 (49 CFR 565, Tables III-V)."""

from __future__ import annotations

from service.core.vin._normalize import normalize_vin

# Table III: digits keep their value; letters map to 1-9 (I, O and Q never occur).
TRANSLITERATION: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "A": 1,
    "B": 2,
    "C": 3,
    "D": 4,
    "E": 5,
    "F": 6,
    "G": 7,
    "H": 8,
    "J": 1,
    "K": 2,
    "L": 3,
    "M": 4,
    "N": 5,
    "P": 7,
    "R": 9,
    "S": 2,
    "T": 3,
    "U": 4,
    "V": 5,
    "W": 6,
    "X": 7,
    "Y": 8,
    "Z": 9,
}
# Table IV: one weight per position; position 9, the check digit itself, weighs 0.
WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def compute_check_digit(vin: str) -> str:
    """Check digit of an already normalised VIN: the weighted sum mod 11, 10 written 'X'."""
    total = sum(TRANSLITERATION[c] * w for c, w in zip(vin, WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def check_digit(text: str) -> str:
    """The check digit (position 9) that 49 CFR 565 requires for this VIN.

    ``check_digit("1G4AH59H45G118341") == "4"`` (the CFR's worked example). The input is
    normalised first, so malformed text raises ``InvalidVIN``.
    """
    return compute_check_digit(normalize_vin(text))
