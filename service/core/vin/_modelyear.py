"""Model year of a North-American VIN: position 10, read with the position-7 rule."""

from __future__ import annotations

# 30 codes (no I, O, Q, U, Z, 0); the cycle repeats every 30 years (A = 1980, 2010, ...).
MODEL_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
FIRST_CYCLE_START = 1980
CYCLE = len(MODEL_YEAR_CODES)


def model_year(vin: str, *, first_model_year: int | None = None) -> int | None:
    """The model year a normalised NA VIN encodes, or None if position 10 is no year code.

    49 CFR 565.15(b): an alphabetic position 7 means 2010-2039, a numeric one 1980-2009. The
    rule binds only vehicles up to 10,000 lb GVWR; heavier ones (Sprinter chassis) may carry a
    numeric position 7 after 2009, as NHTSA vPIC's W1W/W1Y Sprinter patterns do ("40.[36]" in
    table Pattern of vPIC Lite 3.45: https://vpic.nhtsa.dot.gov/api/vPICList_lite_2024_03.bak.zip).
    So for a WMI whose first model year is known, a reading before it moves up one cycle.
    """
    index = MODEL_YEAR_CODES.find(vin[9])
    if index < 0:
        return None
    year = FIRST_CYCLE_START + index
    if vin[6].isalpha() or (first_model_year is not None and year < first_model_year):
        year += CYCLE
    return year
