"""VIN decoder: the rules table, VINs built from every rule, real-world examples, layouts,
corrupted copies, the check digit and the CLI.

The builders and brute-force oracles here are shared with ``test_vin_properties.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.core.errors import InvalidVIN
from service.core.taxonomy import default_taxonomy
from service.core.vin import VinDecode, check_digit, decode_vin, load_vin_rules, normalize_vin
from service.core.vin._rules import VIN_RULES_RESOURCE, EuNoClass, EuRule, NaNoClass, NaRule

REPO = Path(__file__).resolve().parents[2]
RULES = load_vin_rules()
TAXONOMY_PARENTS = frozenset(default_taxonomy().parents)

# --- independent restatements of 49 CFR 565 (not the package's code) --------------------------

# Table III as one string: a letter's value is its index mod 10 ('.' fills the gaps of I, O, Q).
_TRANSLIT = "0123456789.ABCDEFGH..JKLMN.P.R..STUVWXYZ"
_WEIGHTS = "8765432X098765432"  # Table IV, X = 10
YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"  # A = 1980/2010, ..., 9 = 2009/2039
VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


def translit(char: str) -> int:
    return _TRANSLIT.index(char) % 10


def reference_check_digit(vin: str) -> str:
    weights = (10 if w == "X" else int(w) for w in _WEIGHTS)
    total = sum(translit(c) * w for c, w in zip(vin, weights, strict=True))
    return "X" if total % 11 == 10 else str(total % 11)


def with_check_digit(vin: str) -> str:
    return vin[:8] + reference_check_digit(vin) + vin[9:]


def year_code(year: int) -> str:
    return YEAR_CODES[(year - 1980) % 30]


def na_vin(
    wmi: str,
    code: str,
    year: int,
    *,
    pos6: str = "4",
    pos8: str = "B",
    plant: str = "A",
    serial: str = "123456",
    numeric_pos7: bool = False,
) -> str:
    """A 49 CFR 565 VIN: position 7 obeys the model-year rule, position 9 is the check digit."""
    pos7 = "5" if year < 2010 or numeric_pos7 else "K"
    return with_check_digit(f"{wmi}{code}{pos6}{pos7}{pos8}0{year_code(year)}{plant}{serial}")


def eu_vin(
    wmi: str,
    series: str,
    body_digit: int | str,
    *,
    variant: str = "46",
    steering: str = "1",
    plant: str = "A",
    serial: str = "123456",
) -> str:
    """A European FIN: WMI + Baumuster (series, body digit, variant) + steering + plant + serial."""
    return f"{wmi}{series}{body_digit}{variant}{steering}{plant}{serial}"


# --- brute-force oracles: a linear scan over the rules, as the file's header describes them ---


def eu_scope(rule: EuRule | EuNoClass) -> set[str]:
    if rule.wmi is not None:
        return set(rule.wmi)
    return {
        w for w, info in RULES.wmi.items() if rule.vehicle in info.vehicles and info.layouts != "na"
    }


def _scan_eu(entries, wmi: str, baumuster: str):
    found = [
        e
        for e in entries
        if e.series == baumuster[:3]
        and wmi in eu_scope(e)
        and (e.body_digits is None or int(baumuster[3]) in e.body_digits)
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def _scan_na(entries, wmi: str, code: str, year: int):
    found = [
        e
        for e in entries
        if wmi in e.wmi
        and code in e.codes
        and e.min_year <= year
        and (e.max_year is None or year <= e.max_year)
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def oracle_eu(wmi: str, baumuster: str) -> EuRule | None:
    return _scan_eu(RULES.eu, wmi, baumuster)


def oracle_na(wmi: str, code: str, year: int) -> NaRule | None:
    return _scan_na(RULES.na, wmi, code, year)


def oracle_eu_no_class(wmi: str, baumuster: str) -> EuNoClass | None:
    return _scan_eu(RULES.no_class.eu, wmi, baumuster)


def oracle_na_no_class(wmi: str, code: str, year: int) -> NaNoClass | None:
    return _scan_na(RULES.no_class.na, wmi, code, year)


def expected_no_parent(entry: EuNoClass | NaNoClass | None) -> tuple[list[str], dict | None]:
    """The reasons and ``generation`` a VIN that matches no rule decodes with."""
    if entry is None:
        return ["unknown_model_code"], None
    series = entry.series
    return [entry.reason.value], {"series": series, "name": entry.name, "years": entry.years}


def eu_vins(rule: EuRule | EuNoClass) -> list[str]:
    """FINs for a rule: every WMI in its scope x every allowed body digit (0, 4, 9 for "any"),
    steering codes cycling through 1/2/5/6."""
    digits = (0, 4, 9) if rule.body_digits is None else rule.body_digits
    pairs = [(wmi, digit) for wmi in sorted(eu_scope(rule)) for digit in digits]
    return [
        eu_vin(wmi, rule.series, digit, steering="1256"[i % 4])
        for i, (wmi, digit) in enumerate(pairs)
    ]


def na_years(rule: NaRule | NaNoClass) -> list[int]:
    last = rule.max_year if rule.max_year is not None else 2039
    return sorted({rule.min_year, (rule.min_year + last) // 2, last})


def na_vins(rule: NaRule | NaNoClass) -> list[tuple[str, int]]:
    """VINs for a rule: every WMI x every code x the first, a middle and the last model year."""
    return [
        (na_vin(wmi, code, year), year)
        for wmi in rule.wmi
        for code in rule.codes
        for year in na_years(rule)
    ]


def mutate(vin: str, index: int, char: str) -> str:
    return vin[:index] + char + vin[index + 1 :]


# --- the rules table ---------------------------------------------------------------------------


def test_rule_parents_are_taxonomy_parents_or_listed_others():
    other = set(RULES.other_parents)
    unknown = sorted(RULES.parents - TAXONOMY_PARENTS - other)
    assert not unknown, f"rule parents in neither taxonomy.yaml nor other_parents: {unknown}"
    assert not other & TAXONOMY_PARENTS, "other_parents must not repeat taxonomy parents"
    assert other <= RULES.parents, f"unused other_parents: {sorted(other - RULES.parents)}"


def test_every_taxonomy_parent_has_an_eu_rule():
    # Except the V-Class: its series 447 is the Vito's too, and the FIN does not tell them apart.
    eu_parents = {r.parent for r in RULES.eu}
    assert sorted(TAXONOMY_PARENTS - eu_parents) == ["V-Class"]


def test_na_rules_cover_every_parent_sold_in_north_america():
    # EQA, EQC, the forfour and the Actros were never sold in the US: vPIC has no pattern for them.
    # Nor the V-Class: the US W447 is the Metris, a Vito.
    never_in_na = {"EQA-Class", "EQC-Class", "Smart Forfour", "Actros", "V-Class"}
    na_parents = {r.parent for r in RULES.na}
    assert sorted((TAXONOMY_PARENTS - never_in_na) - na_parents) == []
    assert not never_in_na & na_parents


FACTS_WMIS = {  # the WMIs the rules file cites ([vPIC], [w220wiki], ...), with their layout
    "WDB": "both",
    "WDC": "both",
    "WDD": "both",
    "W1K": "both",
    "W1N": "both",
    "WME": "both",
    "WMX": "eu",
    "WDF": "eu",
    "W1V": "eu",
    "W1T": "eu",
    "TCC": "eu",
    "W1A": "eu",
    "VSA": "eu",
    "4JG": "na",
    "55S": "na",
    "WD3": "na",
    "WD4": "na",
    "W1W": "na",
    "W1Y": "na",
    "WD0": "na",
    "WD8": "na",
    "WD2": "na",
    "WD5": "na",
    "1MB": "na",
    "8BT": "na",
    "8BU": "na",
    "9DB": "na",
    "WD6": "na",
    "WDR": "na",
    "WDY": "na",
    "WYB": "na",
    "W1H": "na",
    "W2W": "na",
    "W2Y": "na",
    "WDA": "both",
    "9BM": "eu",
    "VAG": "eu",
    "ADB": "eu",
}
FACTS_WMIS_SCHEME_UNKNOWN = [
    "WDP",
    "WDW",
    "WDX",
    "WDZ",
    "WD1",
    "WD7",
    "WD9",
    "WCD",
    "8AB",
    "8AC",
    "LE4",
    "LEN",
    "3AM",
    "3MB",
    "KPA",
    "KPD",
    "KPG",
    "MHL",
    "NAB",
    "NMB",
    "RLM",
    "TAW",
    "WEB",
    "WKK",
]


def test_wmi_table_lists_every_wmi_of_the_facts():
    assert {w: RULES.wmi[w].layouts for w in FACTS_WMIS if w in RULES.wmi} == FACTS_WMIS
    assert [w for w in FACTS_WMIS_SCHEME_UNKNOWN if w not in RULES.wmi] == []
    assert all(info.manufacturer for info in RULES.wmi.values())


def test_rules_file_states_its_sources():
    text = VIN_RULES_RESOURCE.read_text(encoding="utf-8")
    header = text.split("\nversion:")[0]
    for source in (
        "https://vpic.nhtsa.dot.gov/api/vPICList_lite_2024_03.bak.zip",  # NHTSA vPIC
        "49 CFR 565",
        "https://mbpassion.de/2019/06/baureihenbezeichnungen-und-baumustermerkmale/",
    ):
        assert source in header, source
    # Every source is one a reader can open: no notes that live outside the repository.
    for private in ("vin-facts", "/work/", "shared/domain", ".csv", "[S1", "[S2", "[S3"):
        assert private not in text, private


def test_load_vin_rules_is_cached(tmp_path: Path):
    assert load_vin_rules() is load_vin_rules()
    copy = tmp_path / "vin_rules.yaml"
    copy.write_text(VIN_RULES_RESOURCE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_vin_rules(copy) is load_vin_rules(str(copy))


def _write_rules(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(VIN_RULES_RESOURCE.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "vin_rules.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["eu"].append(
                {"series": "205", "body_digits": [4, 5], "parent": "E-Class", "body": "coupe"}
            ),
            "EU rules overlap",
        ),
        (
            lambda d: d["eu"].append(
                {"series": "463", "wmi": ["WDC"], "parent": "GLC-Class", "body": "suv"}
            ),
            "EU rules overlap",
        ),
        (
            lambda d: d["na"].append(
                {
                    "wmi": ["WDD"],
                    "codes": ["WF"],
                    "min_year": 2020,
                    "max_year": None,
                    "parent": "E-Class",
                    "body": "sedan",
                }
            ),
            "NA rules overlap",
        ),
        (
            lambda d: d["na"].append(
                {
                    "wmi": ["WDF"],
                    "codes": ["AA"],
                    "min_year": 2020,
                    "max_year": None,
                    "parent": "V-Class",
                    "body": "van",
                }
            ),
            "whose layouts are 'eu'",
        ),
        (
            lambda d: d["eu"].append(
                {"series": "999", "wmi": ["XYZ"], "parent": "A-Class", "body": "sedan"}
            ),
            "not in the wmi table",
        ),
        (
            lambda d: d["eu"].append({"series": "999", "parent": "A-Class", "body": "saloon"}),
            "body",
        ),
        (
            lambda d: d["na"].append(
                {
                    "wmi": ["WDD"],
                    "codes": ["ZZ"],
                    "min_year": 2020,
                    "max_year": 2019,
                    "parent": "A-Class",
                    "body": "sedan",
                }
            ),
            "before min_year",
        ),
        (
            lambda d: d["na"].append(
                {
                    "wmi": ["WDD"],
                    "codes": ["IZ"],
                    "min_year": 2020,
                    "max_year": None,
                    "parent": "A-Class",
                    "body": "sedan",
                }
            ),
            "codes",
        ),
        (
            lambda d: d["no_class"]["eu"].append(
                {"series": "205", "body_digits": [0], "name": "C-Class W205", "years": "2014-2021"}
            ),
            "EU rules overlap",
        ),
        (
            lambda d: d["no_class"]["na"].append(
                {
                    "wmi": ["4JG"],
                    "codes": ["FB"],
                    "min_year": 2024,
                    "max_year": None,
                    "series": "167",
                    "name": "GLE V167",
                    "years": "2019-",
                }
            ),
            "NA rules overlap",
        ),
        (
            lambda d: d["no_class"]["eu"].append(
                {"series": "999", "name": "X", "years": "1990-2000", "reason": "low_confidence"}
            ),
            "reason",
        ),
        (
            lambda d: d["no_class"]["eu"].append({"series": "999", "name": "X", "years": "90s"}),
            "years",
        ),
        (
            lambda d: d["no_class"]["eu"].append(
                {"series": "999", "name": "X", "years": "1990-2000", "parent": "E-Class"}
            ),
            "parent",
        ),
    ],
)
def test_loader_rejects_broken_rules(tmp_path, edit, message):
    path = _write_rules(tmp_path, edit)
    with pytest.raises(ValueError, match=message):
        load_vin_rules(path)


def test_loader_accepts_an_unmodified_copy(tmp_path):
    copy = load_vin_rules(_write_rules(tmp_path, lambda d: None))
    assert copy.eu == RULES.eu and copy.na == RULES.na and copy.wmi == RULES.wmi
    assert copy.no_class == RULES.no_class


# --- VINs built from every rule ----------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES.eu, ids=EuRule.describe)
def test_eu_fins_built_from_a_rule_decode_to_it(rule):
    vins = eu_vins(rule)
    assert vins
    for vin in vins:
        decoded = decode_vin(vin)
        assert (decoded.layout, decoded.expected_parent, decoded.expected_body) == (
            "eu",
            rule.parent,
            rule.body,
        ), vin
        assert (decoded.model_code, decoded.series) == (vin[3:9], rule.series), vin
        assert decoded.manufacturer == RULES.wmi[vin[:3]].manufacturer, vin
        assert (decoded.model_year, decoded.check_digit_valid, decoded.reasons) == (
            None,
            None,
            [],
        ), vin


@pytest.mark.parametrize("rule", RULES.na, ids=NaRule.describe)
def test_na_vins_built_from_a_rule_decode_to_it(rule):
    for vin, year in na_vins(rule):
        decoded = decode_vin(vin)
        assert (decoded.layout, decoded.model_year, decoded.check_digit_valid) == (
            "na",
            year,
            True,
        ), vin
        assert (decoded.expected_parent, decoded.expected_body) == (rule.parent, rule.body), vin
        assert (decoded.model_code, decoded.series) == (vin[3:8], rule.series), vin
        assert decoded.reasons == [], vin


@pytest.mark.parametrize("rule", RULES.na, ids=NaRule.describe)
def test_na_vins_outside_a_rules_years_name_no_parent_unless_another_rule_covers_them(rule):
    for wmi in rule.wmi:
        for code in rule.codes:
            for outside in (rule.min_year - 1, (rule.max_year or 2040) + 1):
                if not 1980 <= outside <= 2039:
                    continue
                other = oracle_na(wmi, code, outside)
                decoded = decode_vin(na_vin(wmi, code, outside))
                assert decoded.model_year == outside
                assert decoded.expected_parent == (other.parent if other else None)
                if other is None:
                    reasons, generation = expected_no_parent(oracle_na_no_class(wmi, code, outside))
                    assert decoded.reasons == reasons
                    assert decoded.model_dump(mode="json")["generation"] == generation
                else:
                    assert decoded.reasons == []


# --- known series without a class (no_class) --------------------------------------------------


@pytest.mark.parametrize(
    "entry", [*RULES.no_class.eu, *RULES.no_class.na], ids=lambda e: e.describe()
)
def test_vins_built_from_a_no_class_entry_name_it_and_no_parent(entry):
    reasons, generation = expected_no_parent(entry)
    if isinstance(entry, EuNoClass):
        built = [(vin, "eu", None) for vin in eu_vins(entry)]
    else:
        built = [(vin, "na", year) for vin, year in na_vins(entry)]
    assert built
    for vin, layout, year in built:
        if layout == "na":
            assert check_digit(vin) == vin[8] == reference_check_digit(vin)
        got = decode_vin(vin).model_dump(mode="json")
        fields = ("layout", "model_year", "expected_parent", "expected_body", "series")
        assert [got[k] for k in fields] == [layout, year, None, None, entry.series], vin
        assert (got["reasons"], got["generation"]) == (reasons, generation), vin


def test_no_class_entries_name_no_series_a_rule_gives_a_parent_to():
    # A whole series either names a parent or is a known series without a class, except where
    # the body digit splits it (203: W203/S203 are C-Class, the other bodies are not mapped).
    parent_series = {r.series for r in RULES.eu}
    shared = {e.series for e in RULES.no_class.eu} & parent_series
    assert shared == {"203"}
    digits = {d for r in RULES.eu if r.series == "203" for d in r.body_digits or ()}
    (entry,) = (e for e in RULES.no_class.eu if e.series == "203")
    assert digits == {0, 2} and set(entry.body_digits or ()) == set(range(10)) - digits


@pytest.mark.parametrize(
    ("vin", "series", "name"),
    [
        # European FINs of the series audits bring (Baumuster as [cariffy] prints them)
        ("WDB1241251A560510", "124", "E-Class W124"),  # [cariffy]'s example FIN: 124.125 250 D
        ("WDB1240301A123456", "124", "E-Class W124"),  # 300 E
        ("WDB2100651A123456", "210", "E-Class W210"),
        ("WDB2102651A123456", "210", "E-Class W210"),  # estate S210
        ("WDB1400321A123456", "140", "S-Class W140"),
        ("WDB2020201F123456", "202", "C-Class W202"),
        ("WDB1680331J123456", "168", "A-Class W168"),
        ("WDC1631541A123456", "163", "M-Class W163"),  # 163.154 ML 320
        ("WDB1290671F123456", "129", "SL-Class R129"),
        ("WDB2083651T123456", "208", "CLK-Class C208"),
        ("WDB2037461A123456", "203", "C-Class 203"),  # a 203 body no rule maps
        ("VSA6381941A123456", "638", "Vito / V-Class W638"),
        ("WDF6381941A123456", "638", "Vito / V-Class W638"),
        ("WDB9016631P123456", "901", "Sprinter T1N"),
        ("WDB9026121P123456", "902", "Sprinter T1N"),
        ("WDB9036621P123456", "903", "Sprinter T1N"),
        ("WDB9046121P123456", "904", "Sprinter T1N"),
        ("WDB9056121P123456", "905", "Sprinter T1N"),
        ("8AC9036621A123456", "903", "Sprinter T1N"),  # Argentina
        ("WDB6010671N123456", "601", "T1 Bremer Transporter"),
        ("WDB6110671N123456", "611", "T1 Bremer Transporter"),
        ("WDB6700741L123456", "670", "Vario"),
        ("WDB9340321L123456", "934", "Actros MP2/MP3"),
    ],
)
def test_older_series_decode_as_a_generation_without_a_class(vin, series, name):
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.expected_parent, decoded.series) == ("eu", None, series)
    assert decoded.reasons == ["generation_not_supported"]
    assert decoded.generation is not None and decoded.generation.name.startswith(name)
    assert decoded.generation.series == series and decoded.generation.years


@pytest.mark.parametrize(
    "vin",
    [
        "W1V4476031P123456",  # a real FIN's Baumuster, 447.603
        "WDF4478131P123456",
        "VSA4476051A123456",  # Vitoria
        "WDB4477011P123456",
    ],
)
def test_w447_fins_name_no_parent_because_the_v_class_and_the_vito_share_them(vin):
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.expected_parent, decoded.series) == ("eu", None, "447")
    assert decoded.reasons == ["model_line_ambiguous"]
    assert decoded.generation is not None and "Vito" in decoded.generation.name


@pytest.mark.parametrize(
    ("wmi", "code", "year"),
    [("WD3", "PG", 2016), ("WD4", "FG", 2017), ("WD3", "BG", 2022), ("W1W", "V0", 2021)],
)
def test_the_metris_is_a_vito_not_a_v_class(wmi, code, year):
    decoded = decode_vin(na_vin(wmi, code, year))
    assert (decoded.expected_parent, decoded.series, decoded.reasons) == ("Vito", "447", [])


@pytest.mark.parametrize(
    ("vin", "year", "series", "name"),
    [
        # North-American VINs (positions 6-7 are Baumuster digits before MY2010 [cariffy])
        (with_check_digit("WDBEA30D0HA123456"), 1987, "124", "E-Class W124"),  # 300 E
        (with_check_digit("WDBFA67E0SF123456"), 1995, "129", "SL-Class R129"),  # SL 500
        (with_check_digit("WDBGA51E0TA123456"), 1996, "140", "S-Class W140"),
        (with_check_digit("WDBHA28E0VF123456"), 1997, "202", "C-Class W202"),
        (with_check_digit("WDBJF65H0XA123456"), 1999, "210", "E-Class W210"),
        (with_check_digit("WDBLJ65G0YF123456"), 2000, "208", "CLK-Class C208"),
        (with_check_digit("4JGAB54E01A123456"), 2001, "163", "M-Class W163"),  # 2001 ML 320
    ],
)
def test_older_na_codes_decode_as_a_generation_without_a_class(vin, year, series, name):
    assert check_digit(vin) == vin[8] == reference_check_digit(vin)
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.model_year, decoded.expected_parent) == ("na", year, None)
    assert decoded.reasons == ["generation_not_supported"] and decoded.series == series
    assert decoded.generation is not None and decoded.generation.name.startswith(name)


@pytest.mark.parametrize("rule", RULES.na[::4], ids=NaRule.describe)
def test_na_vin_with_a_wrong_check_digit_is_invalid_and_the_message_names_the_digit(rule):
    vin, _ = na_vins(rule)[0]
    expected = vin[8]
    wrong = "X" if expected != "X" else "0"
    with pytest.raises(InvalidVIN) as err:
        decode_vin(mutate(vin, 8, wrong))
    assert err.value.message == (
        f"VIN check digit (position 9) is '{wrong}', expected '{expected}' for this VIN"
    )
    assert err.value.to_dict()["error"]["code"] == "invalid_vin"


# --- shared series and scopes ([mbpassion]: 204.9 GLK, 247.6 GLB, 167.3 GLE Coupe) ---------


@pytest.mark.parametrize(
    ("vin", "parent", "body"),
    [
        ("WDD2040421A123456", "C-Class", "sedan"),
        ("WDD2042421A123456", "C-Class", "estate"),
        ("WDD2043421A123456", "C-Class", "coupe"),
        ("WDC2049841F123456", "GLK-Class", "suv"),
        ("W1K2470871J123456", "B-Class", "estate"),
        ("W1N2476471N123456", "GLB-Class", "suv"),
        ("W1N2477471J123456", "GLA-Class", "suv"),
        ("W1N1671231A123456", "GLE-Class", "suv"),
        ("W1N1673211A123456", "GLE-Class", "suv_coupe"),
        ("W1N1679461A123456", "GLS-Class", "suv"),
        ("WDC1660571A123456", "GLE-Class", "suv"),
        ("WDC1668241A123456", "GLS-Class", "suv"),
        ("WDC1641861A123456", "M-Class", "suv"),
        ("WDC1648711A123456", "GL-Class", "suv"),
        ("WDC2539461F123456", "GLC-Class", "suv"),
        ("WDC2533461F123456", "GLC-Class", "suv_coupe"),
        ("WDD2183591A123456", "CLS-Class", "coupe"),
        ("WDD2189231A123456", "CLS-Class", "shooting_brake"),
        ("WDD1173431N123456", "CLA-Class", "coupe"),
        ("WDD1179421N123456", "CLA-Class", "shooting_brake"),
        ("W1N2437011N123456", "EQA-Class", "suv"),
        ("W1N2436121N123456", "EQB-Class", "suv"),
        ("WME4530421Y123456", "Smart Forfour", "hatchback"),
        ("WME4533421K123456", "Smart Fortwo", "coupe"),
        ("W1A4534421K123456", "Smart Fortwo", "cabriolet"),
        ("TCC4503321K123456", "Smart Fortwo", "coupe"),
        ("WDB4632281X123456", "G-Class", "suv"),  # 463.2 petrol
        ("W1N4633321X123456", "G-Class", "suv"),  # 463.3 diesel: position 7 is the engine
    ],
)
def test_shared_series_split_on_the_body_digit(vin, parent, body):
    decoded = decode_vin(vin)
    assert (decoded.expected_parent, decoded.expected_body, decoded.reasons) == (parent, body, [])


@pytest.mark.parametrize(
    "vin",
    [
        "WDD2045461A123456",  # 204.5: no such body
        "W1K2472871J123456",  # 247.2
        "W1N1675211A123456",  # 167.5
        "WDC1661571A123456",  # 166.1
        "WME4535421K123456",  # 453.5
        "WDD2228231A123456",  # 222.8: Maybach digits are not sourced
        "WDD1923461A123456",  # C192: no sourced code
        "WDD4513311K123456",  # smart series under a car WMI
        "WME2050461F123456",  # car series under a smart WMI
        "WDD9634271K123456",  # truck series under a car WMI
        "WMX2050461A123456",  # AMG WMI only carries its own series
        "WDD0000001A123456",
    ],
)
def test_unknown_eu_model_codes_name_no_parent(vin):
    decoded = decode_vin(vin)
    assert decoded.layout == "eu"
    assert (decoded.expected_parent, decoded.expected_body) == (None, None)
    assert decoded.reasons == ["unknown_model_code"]
    assert decoded.manufacturer is not None and decoded.series == vin[3:6]


# --- real-world-style examples; NA check digits computed by hand-checked code ------------------


@pytest.mark.parametrize(
    ("vin", "layout", "year", "parent", "body", "series"),
    [
        # European FINs quoted in the facts
        ("W1N1673211A123456", "eu", None, "GLE-Class", "suv_coupe", "167"),
        ("WDD2189231A123456", "eu", None, "CLS-Class", "shooting_brake", "218"),
        ("WDB4374261V212365", "eu", None, "Unimog", "truck", "437"),  # the Unimog manual's FIN
        ("W1K1770461N123456", "eu", None, "A-Class", "hatchback", "177"),  # 177.046 = A 250
        ("W1V9071551P123456", "eu", None, "Sprinter", "van", "907"),
        ("WDB9062331N123456", "eu", None, "Sprinter", "van", "906"),
        ("W1T9634271K123456", "eu", None, "Actros", "truck", "963"),
        ("WME4513311K123456", "eu", None, "Smart Fortwo", "coupe", "451"),
        ("WME4514911K123456", "eu", None, "Smart Fortwo", "cabriolet", "451"),
        ("WMX1903771A123456", "eu", None, "Mercedes-AMG GT", "coupe", "190"),
        ("WDD2050461F123456", "eu", None, "C-Class", "sedan", "205"),
        ("WDD2052461F123456", "eu", None, "C-Class", "estate", "205"),
        ("W1K2971231A123456", "eu", None, "EQS-Class", "sedan", "297"),
        # North-American VINs
        ("4JGFB4KB3LA123456", "na", 2020, "GLE-Class", "suv", "167"),
        ("4JGDA5HB0EA123456", "na", 2014, "GLE-Class", "suv", "166"),  # ML W166, renamed GLE
        ("4JGBB86E18A123456", "na", 2008, "M-Class", "suv", "164"),  # numeric position 7: 1980-2009
        ("4JGDF6EEXGA123456", "na", 2016, "GLS-Class", "suv", "166"),
        ("4JGED6EB8HA123456", "na", 2017, "GLE-Class", "suv_coupe", "292"),
        ("4JGDM2EB4PA123456", "na", 2023, "EQS-Class", "suv", "296"),
        ("4JGGM1EB5PA123456", "na", 2023, "EQE-Class", "suv", "294"),
        ("WMEEJ3BA5BK123456", "na", 2011, "Smart Fortwo", "coupe", "451"),
        ("WD3PE7CD2F5123456", "na", 2015, "Sprinter", "van", "906"),
        ("WD3PE8CD7KP123456", "na", 2019, "Sprinter", "van", "907"),  # first VS30 year on WD3
        ("WD4PG2EE6H3123456", "na", 2017, "Vito", "van", "447"),  # Metris: the US Vito
        ("W1W4EBHY9LT123456", "na", 2020, "Sprinter", "van", None),
        ("W1W40C6YXLT123456", "na", 2020, "Sprinter", "van", None),  # heavy: numeric position 7
        ("WDCYC7DFXCX123456", "na", 2012, "G-Class", "suv", "463"),
        ("W1NYC6BJ8MX123456", "na", 2021, "G-Class", "suv", "463"),
        ("55SWF4KBXFU123456", "na", 2015, "C-Class", "sedan", "205"),
        ("W1KAF4HB8NR123456", "na", 2022, "C-Class", "sedan", "206"),
        ("WDDAJ76F07M123456", "na", 2007, "SLR McLaren", "coupe", "199"),  # WDD A?: 199, then 206
        ("W1KKJ6HBXMF123456", "na", 2021, "E-Class", "coupe", "207"),  # W1K KJ = E-Coupe C207 ...
        ("W1NKJ4HB1RF123456", "na", 2024, "GLC-Class", "suv_coupe", "254"),  # ... W1N KJ = C254
        ("W1KCG2DBXNA123456", "na", 2022, "EQS-Class", "sedan", "297"),
        ("WDDGJ4HB9GG123456", "na", 2016, "C-Class", "coupe", "204"),
    ],
)
def test_real_world_style_vins(vin, layout, year, parent, body, series):
    if layout == "na":
        assert check_digit(vin) == vin[8] == reference_check_digit(vin)
    decoded = decode_vin(vin)
    assert (
        decoded.layout,
        decoded.model_year,
        decoded.expected_parent,
        decoded.expected_body,
        decoded.series,
        decoded.reasons,
    ) == (layout, year, parent, body, series, [])


@pytest.mark.parametrize(
    ("wmi", "code", "year", "parent", "chassis_series"),
    [
        # The 167 generation is still built: its rules stay open past vPIC's last W1N year.
        ("4JG", "FD", 2024, "GLE-Class", "167"),  # a 2024 GLE Coupe
        ("W1N", "FD", 2024, "GLE-Class", "167"),
        ("4JG", "FF", 2024, "GLS-Class", "167"),  # a 2024 GLS
        ("W1N", "FF", 2025, "GLS-Class", "167"),
        ("W1N", "FB", 2023, "GLE-Class", "167"),
        # One generation, two names: ML (MY2012-15) and GLE (to MY2019) are the W166 ...
        ("4JG", "DA", 2012, "GLE-Class", "166"),
        ("4JG", "DA", 2019, "GLE-Class", "166"),
        # ... GL (MY2013-16) and GLS (to MY2019) the X166.
        ("4JG", "DF", 2013, "GLS-Class", "166"),
        ("4JG", "DF", 2019, "GLS-Class", "166"),
    ],
)
def test_current_and_renamed_suv_generations_keep_their_parent(
    wmi, code, year, parent, chassis_series
):
    decoded = decode_vin(na_vin(wmi, code, year))
    assert (decoded.model_year, decoded.expected_parent, decoded.series, decoded.reasons) == (
        year,
        parent,
        chassis_series,
        [],
    )


@pytest.mark.parametrize(
    ("wmi", "code", "year", "chassis_series"),
    [
        ("8BT", "PE", 2017, None),  # Argentina, MPV
        ("8BU", "PF", 2016, None),  # Argentina, truck
        ("8BU", "CE", 2021, None),
        ("WDR", "PE", 2014, "906"),  # Freightliner, MPV
        ("WDY", "FF", 2016, "906"),  # Freightliner, truck
        ("WDY", "BE", 2008, "906"),  # numeric position 7: read 1980-2009
        ("WDR", "FE", 2020, None),
        ("WD3", "PE", 2021, "907"),  # vPIC keeps WD3/WD4 open after the first VS30 year
        ("WD4", "CF", 2019, "907"),
    ],
)
def test_sprinter_wmis_decode_to_sprinter(wmi, code, year, chassis_series):
    vin = na_vin(wmi, code, year)
    assert check_digit(vin) == vin[8] == reference_check_digit(vin)
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.model_year, decoded.expected_parent) == ("na", year, "Sprinter")
    assert (decoded.expected_body, decoded.series, decoded.reasons) == ("van", chassis_series, [])


@pytest.mark.parametrize(
    ("wmi", "code", "year"),
    [
        ("WDR", "PD", 2006),  # vPIC ".D" (T1N) names no position-4 letter
        ("8BT", "PE", 2015),  # vPIC starts 8BT at MY2016
        ("8BT", "BE", 2017),  # before MY2018 vPIC lists only FE and PE for 8BT
        ("WDR", "PF", 2017),  # WDR ".F" only from MY2018
    ],
)
def test_sprinter_wmi_codes_vpic_does_not_list_name_no_parent(wmi, code, year):
    decoded = decode_vin(na_vin(wmi, code, year))
    assert (decoded.expected_parent, decoded.reasons) == (None, ["unknown_model_code"])


def test_a_2019_gle_code_fb_is_no_v167_because_vpic_starts_fb_at_2020():
    # vPIC: 4JG FB from MY2020; the MY2019 GLE is the W166 (4JG DA). No rule, so no parent.
    decoded = decode_vin(na_vin("4JG", "FB", 2019))
    assert (decoded.expected_parent, decoded.reasons) == (None, ["unknown_model_code"])


def test_decode_has_exactly_the_documented_fields():
    decoded = decode_vin("WDD2050461F123456")
    assert decoded.model_dump(mode="json") == {
        "vin": "WDD2050461F123456",
        "layout": "eu",
        "wmi": "WDD",
        "manufacturer": "Daimler AG",
        "model_code": "205046",
        "series": "205",
        "model_year": None,
        "check_digit_valid": None,
        "expected_parent": "C-Class",
        "expected_body": "sedan",
        "generation": None,
        "reasons": [],
    }
    with pytest.raises(ValueError):
        decoded.expected_parent = "E-Class"  # frozen


# --- layout choice (service/core/vin/_decoder.py, _layout) ------------------------------------


def test_eu_fin_that_passes_the_na_check_by_chance_stays_european():
    fins = (eu_vin("WDD", "205", 0, serial=f"{n:06d}") for n in range(1000))
    lucky = next(v for v in fins if reference_check_digit(v) == v[8])
    decoded = decode_vin(lucky)
    assert (decoded.layout, decoded.expected_parent, decoded.model_year) == ("eu", "C-Class", None)


@pytest.mark.parametrize(
    "vin",
    [
        na_vin("WDD", "WF", 2018),  # letters in positions 4-8
        na_vin("4JG", "FB", 2021),  # NA-only WMI
        "WDD205046KA123456",  # Baumuster digits, but a model-year letter in position 10
        na_vin("1G4", "AH", 2005),  # not Mercedes, but a North-American WMI
    ],
)
def test_north_american_vin_with_a_wrong_check_digit_is_invalid(vin):
    expected = reference_check_digit(vin)
    wrong = next(c for c in "0123456789X" if c != expected)
    with pytest.raises(InvalidVIN, match=f"is '{wrong}', expected '{expected}' for this VIN"):
        decode_vin(mutate(vin, 8, wrong))


def test_digits_with_an_unknown_steering_code_and_no_valid_check_digit_decode_as_unknown_eu():
    vin = "WDD2050463A123456"  # position 10 '3' is no steering code; check digit would be 8
    assert reference_check_digit(vin) != vin[8]
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.expected_parent, decoded.reasons) == (
        "eu",
        None,
        ["unknown_model_code"],
    )


def test_eu_only_wmi_never_reads_as_north_american():
    decoded = decode_vin("WDFPE7CD2F5123456")
    assert (decoded.layout, decoded.expected_parent, decoded.reasons) == (
        "eu",
        None,
        ["unknown_model_code"],
    )
    assert decoded.series is None


@pytest.mark.parametrize(
    ("vin", "layout", "year"),
    [
        ("1G4AH59H45G118341", "na", 2005),  # the CFR worked example: a Buick
        ("VF1RFB00X56789012", "eu", None),  # not Mercedes, not North American, no valid check digit
        (with_check_digit("JHMCM56557C404453"), "na", 2007),  # Japanese, valid check digit
    ],
)
def test_non_mercedes_vins_name_no_parent(vin, layout, year):
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.model_year, decoded.manufacturer) == (layout, year, None)
    assert (decoded.expected_parent, decoded.series, decoded.reasons) == (
        None,
        None,
        ["vin_not_mercedes"],
    )


@pytest.mark.parametrize(
    ("vin", "year"),
    [
        ("WDDGF4HB3GA123456", 2016),  # W204 sedan ended MY2015 in vPIC
        (na_vin("4JG", "ZZ", 2020), 2020),  # no such code
        (na_vin("WDD", "GF", 2011)[:9] + "U" + "A123456", None),  # U is no model-year code
        (na_vin("WD0", "PE", 2008), 2008),  # Dodge Sprinter: no sourced codes
    ],
)
def test_unknown_na_model_codes_name_no_parent(vin, year):
    vin = with_check_digit(vin)
    decoded = decode_vin(vin)
    assert (decoded.layout, decoded.model_year, decoded.check_digit_valid) == ("na", year, True)
    assert (decoded.expected_parent, decoded.series, decoded.reasons) == (
        None,
        None,
        ["unknown_model_code"],
    )


# --- corrupted copies and normalisation --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("WDD2050461F12345", "VIN must be 17 characters (got 16: 'WDD2050461F12345')"),
        ("WDD2050461F1234567", "VIN must be 17 characters (got 18: 'WDD2050461F1234567')"),
        ("", "VIN must be 17 characters (got 0: '')"),
        ("wdd2050461f12345", "VIN must be 17 characters (got 16: 'WDD2050461F12345')"),
        ("WDD2O50461F123456", "VIN contains 'O' at position 5; VINs never use I, O or Q"),
        ("WDD2050461F12345i", "VIN contains 'I' at position 17; VINs never use I, O or Q"),
        ("QDD2050461F123456", "VIN contains 'Q' at position 1; VINs never use I, O or Q"),
        (
            "WDD2050461F12345*",
            "VIN contains '*' at position 17; VINs use only the digits 0-9 and the letters A-Z",
        ),
        (
            "WDD2050461F12345\u017f",  # long s: str.upper() would turn it into 'S'
            "VIN contains '\u017f' at position 17; "
            "VINs use only the digits 0-9 and the letters A-Z",
        ),
        ("W" * 65, "VIN input must be at most 64 characters (got 65)"),
        (" " * 60 + "WDD2050461F123456", "VIN input must be at most 64 characters (got 77)"),
    ],
)
def test_malformed_vins_are_invalid_with_a_message_naming_rule_and_value(text, message):
    with pytest.raises(InvalidVIN) as err:
        decode_vin(text)
    assert err.value.message == message
    assert err.value.to_dict() == {
        "error": {"code": "invalid_vin", "message": message, "field": "vin"}
    }


def test_non_text_is_invalid():
    with pytest.raises(InvalidVIN, match="VIN must be text"):
        decode_vin(12345678901234567)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "wdd2050461f123456",
        " WDD 205046 1F 123456\n",
        "WDD-205046-1F-123456",
        "Wdd205046\t1f123456",
    ],
)
def test_case_spaces_and_dashes_normalise(text):
    assert normalize_vin(text) == "WDD2050461F123456"
    assert decode_vin(text) == decode_vin("WDD2050461F123456")


# --- check digit -------------------------------------------------------------------------------


def test_cfr_worked_example():
    assert check_digit("1G4AH59H45G118341") == "4"
    assert check_digit("1g4-ah59h4-5g118341") == "4"  # the input is normalised first


def test_check_digit_ten_is_written_x():
    vin = next(
        v for v in (f"1M8GDM9A0KP{n:06d}" for n in range(100)) if reference_check_digit(v) == "X"
    )
    assert check_digit(vin) == "X"


def test_check_digit_rejects_malformed_text():
    with pytest.raises(InvalidVIN):
        check_digit("1G4AH59H?5G118341")


# --- the CLI -----------------------------------------------------------------------------------


def _cli(*vins: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "vin", *vins],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_one_json_object_per_vin_and_exits_2_on_a_bad_one():
    proc = _cli("WDD2050461F123456", "WDD2050461F12345")
    assert proc.returncode == 2, proc.stderr
    good, bad = (json.loads(line) for line in proc.stdout.splitlines())
    assert set(good) == set(VinDecode.model_fields)
    assert (good["expected_parent"], good["layout"]) == ("C-Class", "eu")
    assert bad == {
        "error": {
            "code": "invalid_vin",
            "field": "vin",
            "message": "VIN must be 17 characters (got 16: 'WDD2050461F12345')",
        }
    }


def test_cli_exits_0_when_every_vin_decodes():
    proc = _cli("4JGFB4KB3LA123456", "1G4AH59H45G118341")
    assert proc.returncode == 0, proc.stderr
    parents = [json.loads(line)["expected_parent"] for line in proc.stdout.splitlines()]
    assert parents == ["GLE-Class", None]


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("WDD2052041F123456", "WDD2052041F******"),
        (" wdd-205204 1F123456 ", "WDD2052041F******"),
        ("WDD205", "WDD205"),
        ("X" * 500, "XXXXXXXXXXX******"),
        ("WDD2052041F12\n3456\x00", "WDD2052041F******"),
    ],
)
def test_mask_vin_hides_the_serial(raw: str, masked: str) -> None:
    from service.core.vin import mask_vin

    assert mask_vin(raw) == masked
