"""``decode_vin``: a VIN's expected parent class, or an honest "unknown".

A wrong parent lets a mismatched photo pass as a match, so nothing here guesses: a model code
that matches no rule decodes with ``expected_parent`` null and a reason saying why. A code the
rules know as a generation or line without a class (a 1990s E-Class) says so and names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.core.errors import InvalidVIN
from service.core.reasons import Reason
from service.core.vin._checkdigit import compute_check_digit
from service.core.vin._modelyear import model_year
from service.core.vin._normalize import normalize_vin
from service.core.vin._rules import (
    EuEntry,
    EuNoClass,
    NaEntry,
    NaNoClass,
    VinRules,
    WmiInfo,
    load_vin_rules,
)

# European FIN position 10: 1/2 = left/right-hand drive, 5/6 = the same as CKD kits.
EU_STEERING_CODES = frozenset("1256")
# WMIs beginning with 1-5 are assigned to North America, where 49 CFR 565 applies.
NORTH_AMERICAN_REGIONS = frozenset("12345")

Layout = Literal["eu", "na"]


class Generation(BaseModel):
    """A known Mercedes-Benz series that names no parent the model could match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: str | None = Field(
        description="3-digit series (Baureihe), when the rules know it", examples=["124"]
    )
    name: str = Field(
        description="model line and chassis, as the rules name them",
        examples=["E-Class W124 (S124, C124, A124)"],
    )
    years: str = Field(
        description="production years ('1984-1997'; '2014-' while still built)",
        examples=["1984-1997"],
    )


class VinDecode(BaseModel):
    """What a VIN says about the car: layout, model code and the parent class it expects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vin: str = Field(description="the VIN, normalised", examples=["WDD2050461F123456"])
    layout: Layout = Field(
        description="eu: European FIN (Baumuster in positions 4-9); na: 49 CFR 565 VIN"
    )
    wmi: str = Field(description="world manufacturer identifier, positions 1-3")
    manufacturer: str | None = Field(description="null when not a Mercedes-Benz group WMI")
    model_code: str = Field(
        description="eu: the Baumuster, positions 4-9; na: the descriptor, positions 4-8"
    )
    series: str | None = Field(
        description="3-digit series (Baureihe): eu positions 4-6; na from the matched rule"
    )
    model_year: int | None = Field(description="na only: position 10; null for eu FINs")
    check_digit_valid: bool | None = Field(
        description="na: true (a wrong check digit is an error); eu: null, there is none"
    )
    expected_parent: str | None = Field(
        description="the parent class the VIN names; null when unknown (never guessed)"
    )
    expected_body: str | None = Field(description="body style, when the model code names one")
    generation: Generation | None = Field(
        default=None,
        description="the known series a VIN names when it names no parent: a generation or "
        "line the taxonomy has no class for (reason generation_not_supported), or a series "
        "whose lines the VIN cannot tell apart (model_line_ambiguous); null otherwise",
    )
    reasons: list[Reason] = Field(
        description="empty when a parent was found, else why not: vin_not_mercedes, "
        "unknown_model_code, generation_not_supported, model_line_ambiguous"
    )


def decode_vin(text: str, rules_path: Path | str | None = None) -> VinDecode:
    """Decode a VIN into its expected parent class.

    Raises ``InvalidVIN`` for text that is not a well-formed VIN, and for a North-American VIN
    whose check digit is wrong. A well-formed VIN the rules do not cover decodes with
    ``expected_parent`` null and a reason. ``rules_path``: a rules file of the same format for
    another taxonomy (setting ``vin_rules_path``); None: the packaged Mercedes-Benz rules.
    """
    vin = normalize_vin(text)
    rules = load_vin_rules(rules_path)
    info = rules.wmi.get(vin[:3])
    if _layout(vin, info) == "eu":
        return _decode_eu(vin, info, rules)
    return _decode_na(vin, info, rules)


def _layout(vin: str, info: WmiInfo | None) -> Layout:
    """Which scheme the VIN follows; raises for an NA VIN with a bad check digit.

    An NA-only WMI is read by 49 CFR 565; a WMI used for both is read as a European FIN when
    positions 4-9 are Baumuster digits and position 10 a steering code, else by the check digit.
    """
    expected = compute_check_digit(vin)
    check_ok = vin[8] == expected
    if info is None:
        must_be_na = vin[0] in NORTH_AMERICAN_REGIONS
        if check_ok or must_be_na:
            return _na_checked(vin, expected)
        return "eu"
    if info.layouts == "na":
        return _na_checked(vin, expected)
    if info.layouts == "eu":
        return "eu"
    # A FIN passes the NA check by chance about 1 in 11 times: test its digit pattern first.
    if _looks_european(vin):
        return "eu"
    if check_ok or _looks_north_american(vin):
        return _na_checked(vin, expected)
    return "eu"


def _na_checked(vin: str, expected: str) -> Layout:
    if vin[8] != expected:
        raise InvalidVIN(
            f"VIN check digit (position 9) is {vin[8]!r}, expected {expected!r} for this VIN"
        )
    return "na"


def _looks_european(vin: str) -> bool:
    return vin[3:9].isdigit() and vin[9] in EU_STEERING_CODES


def _looks_north_american(vin: str) -> bool:
    # A letter in the descriptor or a model-year letter: neither occurs in a European FIN.
    return any(c.isalpha() for c in vin[3:8]) or vin[9].isalpha()


def _decode_eu(vin: str, info: WmiInfo | None, rules: VinRules) -> VinDecode:
    baumuster = vin[3:9]
    entry = None
    if info is not None and _looks_european(vin):
        entry = rules.match_eu(vin[:3], baumuster)
    series = vin[3:6] if info is not None and vin[3:6].isdigit() else None
    return _result(
        vin, info, layout="eu", model_code=baumuster, series=series, year=None, entry=entry
    )


def _decode_na(vin: str, info: WmiInfo | None, rules: VinRules) -> VinDecode:
    year = model_year(vin, first_model_year=info.first_model_year if info else None)
    entry = None
    if info is not None and year is not None:
        entry = rules.match_na(vin[:3], vin[3:5], year)
    series = entry.series if entry else None
    return _result(
        vin, info, layout="na", model_code=vin[3:8], series=series, year=year, entry=entry
    )


def _result(
    vin: str,
    info: WmiInfo | None,
    *,
    layout: Layout,
    model_code: str,
    series: str | None,
    year: int | None,
    entry: EuEntry | NaEntry | None,
) -> VinDecode:
    parent = body = generation = None
    if info is None:
        reasons = [Reason.VIN_NOT_MERCEDES]
    elif entry is None:
        reasons = [Reason.UNKNOWN_MODEL_CODE]
    elif isinstance(entry, EuNoClass | NaNoClass):
        reasons = [entry.reason]
        generation = Generation(series=series, name=entry.name, years=entry.years)
    else:
        reasons = []
        parent, body = entry.parent, entry.body
    return VinDecode(
        vin=vin,
        layout=layout,
        wmi=vin[:3],
        manufacturer=info.manufacturer if info else None,
        model_code=model_code,
        series=series,
        model_year=year,
        check_digit_valid=True if layout == "na" else None,
        expected_parent=parent,
        expected_body=body,
        generation=generation,
        reasons=reasons,
    )
