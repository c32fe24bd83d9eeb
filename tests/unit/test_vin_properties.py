"""Properties of the VIN decoder (Hypothesis), checked against brute-force oracles.

The single-character property, stated precisely. Take a valid North-American Mercedes VIN built
from a rule (or from a no_class entry: a known code that names no parent) and change one
position to another VIN character:
- if the change breaks the check digit (position 9 itself, or a character whose 49 CFR 565
  value differs), the decoder raises InvalidVIN or names no parent: never a non-null parent;
- otherwise (same value, so the weighted sum mod 11 is unchanged) the check digit cannot see
  the change; the decoder then must answer exactly what the rules say for the new VIN. That
  can be another parent (WDD GJ C-Class -> WDD XJ S-Class: G and X both count 7), which is a
  limit of the VIN standard, pinned below so nobody mistakes it for a decoder bug.
An exhaustive run counts every outcome, so neither branch can pass vacuously.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from service.core.errors import InvalidVIN
from service.core.vin import check_digit, decode_vin, normalize_vin
from tests.unit.test_vin_decoder import (
    RULES,
    VIN_CHARS,
    YEAR_CODES,
    eu_scope,
    eu_vin,
    expected_no_parent,
    mutate,
    na_vin,
    oracle_eu,
    oracle_eu_no_class,
    oracle_na,
    oracle_na_no_class,
    reference_check_digit,
    translit,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

vin_char = st.sampled_from(VIN_CHARS)
vins = st.text(alphabet=VIN_CHARS, min_size=17, max_size=17)
mercedes_eu_wmis = sorted(w for w, i in RULES.wmi.items() if i.layouts != "na")
mercedes_na_wmis = sorted(w for w, i in RULES.wmi.items() if i.layouts != "eu")


def oracle_entries(vin: str):
    """The rule and the no_class entry a VIN with a valid check digit matches (spec restated)."""
    info = RULES.wmi.get(vin[:3])
    if info is None:
        return None, None
    european = vin[3:9].isdigit() and vin[9] in "1256"
    if info.layouts == "eu" or (info.layouts == "both" and european):
        if not european:
            return None, None
        return oracle_eu(vin[:3], vin[3:9]), oracle_eu_no_class(vin[:3], vin[3:9])
    if vin[9] not in YEAR_CODES:
        return None, None
    year = 1980 + YEAR_CODES.index(vin[9])
    if vin[6].isalpha() or (info.first_model_year and year < info.first_model_year):
        year += 30
    return oracle_na(vin[:3], vin[3:5], year), oracle_na_no_class(vin[:3], vin[3:5], year)


def oracle_parent(vin: str) -> str | None:
    """The parent the rules name for a VIN whose check digit is valid (spec restated)."""
    rule, _ = oracle_entries(vin)
    return rule.parent if rule else None


def na_vins_from(entries) -> st.SearchStrategy[str]:
    """Valid NA-layout Mercedes VINs built from a random entry, year and filler characters."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        entry = draw(st.sampled_from(entries))
        last = entry.max_year if entry.max_year is not None else 2039
        return na_vin(
            draw(st.sampled_from(entry.wmi)),
            draw(st.sampled_from(entry.codes)),
            draw(st.integers(entry.min_year, last)),
            pos6=draw(vin_char),
            pos8=draw(vin_char),
            plant=draw(vin_char),
            serial=draw(st.text(alphabet="0123456789", min_size=6, max_size=6)),
        )

    return build()


# --- normalisation -----------------------------------------------------------------------------


@FAST
@given(st.text(max_size=80))
def test_normalisation_is_idempotent_on_any_text(text):
    try:
        vin = normalize_vin(text)
    except InvalidVIN:
        return
    assert normalize_vin(vin) == vin
    assert len(vin) == 17 and set(vin) <= set(VIN_CHARS)


@FAST
@given(
    vins,
    st.lists(st.sampled_from([" ", "-", "\t"]), min_size=17, max_size=17),
    st.lists(st.booleans(), min_size=17, max_size=17),
)
def test_spacing_and_case_never_change_the_vin(vin, separators, lower):
    text = "".join(
        sep + (c.lower() if low else c) for c, sep, low in zip(vin, separators, lower, strict=True)
    )
    assert normalize_vin(text) == vin
    assert normalize_vin(normalize_vin(text)) == vin


# --- check digit and decoding invariants -------------------------------------------------------


@FAST
@given(vins)
def test_check_digit_matches_the_cfr_tables(vin):
    assert check_digit(vin) == reference_check_digit(vin)


def eu_fins_from(entries) -> st.SearchStrategy[str]:
    """European FINs built from a random entry (rule or no_class) and a WMI of its scope."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        entry = draw(st.sampled_from(entries))
        digits = range(10) if entry.body_digits is None else entry.body_digits
        return eu_vin(
            draw(st.sampled_from(sorted(eu_scope(entry)))),
            entry.series,
            draw(st.sampled_from(digits)),
            variant=draw(st.text(alphabet="0123456789", min_size=2, max_size=2)),
            steering=draw(st.sampled_from("1256")),
            plant=draw(vin_char),
        )

    return build()


any_vin = st.one_of(
    vins,
    st.builds(lambda w, rest: w + rest[3:], st.sampled_from(sorted(RULES.wmi)), vins),
    na_vins_from(RULES.na),
    eu_fins_from(RULES.eu),
    eu_fins_from(RULES.no_class.eu),
    na_vins_from(RULES.no_class.na),
)


@FAST
@given(any_vin)
def test_decoding_any_vin_either_raises_invalid_vin_or_is_consistent(vin):
    try:
        decoded = decode_vin(vin)
    except InvalidVIN as exc:
        assert exc.field == "vin" and exc.message
        event("invalid")
        return
    event(f"{decoded.layout} parent={decoded.expected_parent is not None}")
    assert decoded.vin == vin and decoded.wmi == vin[:3]
    if decoded.layout == "na":
        assert decoded.check_digit_valid is True and vin[8] == reference_check_digit(vin)
        assert decoded.model_code == vin[3:8]
    else:
        assert decoded.check_digit_valid is None and decoded.model_year is None
        assert decoded.model_code == vin[3:9]
    if decoded.expected_parent is None:
        assert decoded.expected_body is None
        rule, no_class = oracle_entries(vin)
        assert rule is None
        if decoded.manufacturer is None:
            assert (decoded.reasons, decoded.generation) == (["vin_not_mercedes"], None)
        else:
            reasons, generation = expected_no_parent(no_class)
            assert decoded.reasons == reasons
            assert decoded.model_dump(mode="json")["generation"] == generation
    else:
        assert decoded.reasons == [] and decoded.manufacturer is not None
        assert decoded.expected_parent in RULES.parents
        assert decoded.expected_parent == oracle_parent(vin)
    assert (decoded.manufacturer is None) == (vin[:3] not in RULES.wmi)


rule_baumuster = st.builds(
    lambda rule, digit, variant: f"{rule.series}{digit}{variant}",
    st.sampled_from(RULES.eu),
    st.integers(0, 9),
    st.text(alphabet="0123456789", min_size=2, max_size=2),
)


@FAST
@given(
    st.sampled_from(mercedes_eu_wmis),
    st.one_of(rule_baumuster, st.text(alphabet="0123456789", min_size=6, max_size=6)),
    st.sampled_from("1256"),
    vin_char,
    st.text(alphabet=VIN_CHARS, min_size=6, max_size=6),
)
def test_eu_fins_decode_as_the_brute_force_rule_scan(wmi, baumuster, steering, plant, serial):
    vin = f"{wmi}{baumuster}{steering}{plant}{serial}"
    rule = oracle_eu(wmi, baumuster)
    decoded = decode_vin(vin)
    event(f"rule={rule is not None}")
    assert decoded.layout == "eu"
    assert decoded.expected_parent == (rule.parent if rule else None)
    assert decoded.expected_body == (rule.body if rule else None)


rule_wmi_codes = sorted({(w, c) for r in RULES.na for w in r.wmi for c in r.codes})


@FAST
@given(
    st.one_of(
        st.sampled_from(rule_wmi_codes),
        st.tuples(
            st.sampled_from(mercedes_na_wmis), st.text(alphabet=VIN_CHARS, min_size=2, max_size=2)
        ),
    ),
    st.integers(1980, 2039),
    vin_char,
    vin_char,
)
def test_na_vins_decode_as_the_brute_force_rule_scan(wmi_code, year, pos6, pos8):
    wmi, code = wmi_code
    assume(not code.isdigit() or RULES.wmi[wmi].layouts == "na")  # digits + pos 10 may read EU
    vin = na_vin(wmi, code, year, pos6=pos6, pos8=pos8)
    first_year = RULES.wmi[wmi].first_model_year
    if first_year and year < first_year and year < 2010:
        year += 30  # a numeric position 7 under a heavy-vehicle WMI reads in the WMI's era
    rule = oracle_na(wmi, code, year)
    event(f"rule={rule is not None}")
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.model_year) == ("na", year)
    assert decoded.expected_parent == (rule.parent if rule else None)
    assert decoded.expected_body == (rule.body if rule else None)


@FAST
@given(
    st.sampled_from(sorted({(r.series, d) for r in RULES.eu for d in (r.body_digits or [0])})),
    st.sampled_from(["", " ", "-"]),
    st.booleans(),
)
def test_formatting_never_changes_a_decode(series_digit, separator, lower):
    series, digit = series_digit
    vin = eu_vin("WDD", series, digit)
    text = separator.join([vin[:3], vin[3:9], vin[9:]])
    assert decode_vin(text.lower() if lower else text) == decode_vin(vin)


# --- one character changed ---------------------------------------------------------------------


def _same_value_chars(char: str) -> list[str]:
    return [c for c in VIN_CHARS if c != char and translit(c) == translit(char)]


def _classify(vin: str, index: int, char: str) -> str:
    """Decode a one-character change of a valid NA VIN and check it against the property."""
    changed = mutate(vin, index, char)
    keeps_check_digit = index != 8 and translit(char) == translit(vin[index])
    try:
        decoded = decode_vin(changed)
    except InvalidVIN:
        assert not keeps_check_digit, changed
        return "invalid"
    if not keeps_check_digit:
        assert decoded.expected_parent is None, (vin, changed, decoded.expected_parent)
        return "no parent (check digit broken)"
    assert decoded.expected_parent == oracle_parent(changed), changed
    if decoded.expected_parent is None:
        return "no parent (check digit kept)"
    if decoded.expected_parent == decode_vin(vin).expected_parent:
        return "same parent (check digit kept)"
    return "other parent (check digit kept)"


@FAST
@given(
    st.one_of(na_vins_from(RULES.na), na_vins_from(RULES.no_class.na)),
    st.integers(0, 16),
    st.booleans(),
    st.data(),
)
def test_one_changed_character_never_yields_a_parent_the_rules_do_not_give(
    vin, index, same_value, data
):
    pool = (
        _same_value_chars(vin[index]) if same_value else [c for c in VIN_CHARS if c != vin[index]]
    )
    assume(pool)
    event(_classify(vin, index, data.draw(st.sampled_from(pool))))


def test_one_changed_character_exhaustively_for_one_vin_per_na_parent():
    bases = {}
    for rule in RULES.na:
        bases.setdefault(rule.parent, na_vin(rule.wmi[0], rule.codes[0], rule.min_year))
    for entry in RULES.no_class.na:  # known codes without a parent: a change must not add one
        bases.setdefault(entry.name, na_vin(entry.wmi[0], entry.codes[0], entry.max_year or 2039))
    outcomes = Counter(
        _classify(vin, index, char)
        for vin in bases.values()
        for index in range(17)
        for char in VIN_CHARS
        if char != vin[index]
    )
    # Every branch of the property is exercised, so it cannot pass vacuously.
    assert set(outcomes) == {
        "invalid",
        "no parent (check digit broken)",
        "no parent (check digit kept)",
        "same parent (check digit kept)",
        "other parent (check digit kept)",
    }, outcomes
    # Most changes are caught: the check digit only misses same-value swaps.
    assert outcomes["invalid"] > 10 * outcomes["other parent (check digit kept)"]


def test_a_same_value_swap_is_invisible_to_the_check_digit():
    # G and X both count 7 in 49 CFR 565 Table III: WDD GJ (C204 coupe) -> WDD XJ (C217 coupe).
    c_class = "WDDGJ4HB9GG123456"
    s_class = mutate(c_class, 3, "X")
    assert check_digit(s_class) == s_class[8] == c_class[8]
    assert decode_vin(c_class).expected_parent == "C-Class"
    assert decode_vin(s_class).expected_parent == "S-Class"
