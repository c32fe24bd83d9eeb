"""The model-code rules: ``service/core/data/vin_rules.yaml``, validated and indexed.

The file's header comment documents every field and where the rules come from.
"""

from __future__ import annotations

import re
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator

from service.core.taxonomy import DATA

VIN_RULES_RESOURCE = DATA / "vin_rules.yaml"

WmiCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJ-NPR-Z]{3}$")]
NaCode = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJ-NPR-Z]{2}$")]
BodyDigit = Annotated[int, Field(ge=0, le=9)]
ModelYear = Annotated[int, Field(ge=1980, le=2039)]
Body = Literal[
    "sedan",
    "estate",
    "coupe",
    "cabriolet",
    "roadster",
    "hatchback",
    "suv",
    "suv_coupe",
    "shooting_brake",
    "van",
    "truck",
]
Vehicle = Literal["car", "smart", "van", "truck"]


class WmiInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    manufacturer: str = Field(min_length=1)
    layouts: Literal["eu", "na", "both"]
    vehicles: tuple[Vehicle, ...] = ()
    first_model_year: ModelYear | None = None


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parent: str = Field(min_length=1)
    body: Body | None
    chassis: str | None = None


class EuRule(_Rule):
    """Baumuster rule: series (VIN positions 4-6) and body digit (position 7)."""

    series: str = Field(pattern=r"^\d{3}$")
    body_digits: tuple[BodyDigit, ...] | None = Field(default=None, min_length=1)
    vehicle: Vehicle = "car"
    wmi: tuple[WmiCode, ...] | None = Field(default=None, min_length=1)

    def accepts_body_digit(self, digit: str) -> bool:
        return self.body_digits is None or int(digit) in self.body_digits

    def describe(self) -> str:
        digits = "any" if self.body_digits is None else ",".join(map(str, self.body_digits))
        return f"eu {self.series}.{digits} -> {self.parent}"


class NaRule(_Rule):
    """North-American rule: WMI, VIN positions 4-5 and a model-year range."""

    wmi: tuple[WmiCode, ...] = Field(min_length=1)
    codes: tuple[NaCode, ...] = Field(min_length=1)
    min_year: ModelYear
    max_year: ModelYear | None

    @model_validator(mode="after")
    def _year_order(self) -> NaRule:
        if self.max_year is not None and self.max_year < self.min_year:
            raise ValueError(f"max_year {self.max_year} is before min_year {self.min_year}")
        return self

    def covers_year(self, year: int) -> bool:
        return self.min_year <= year and (self.max_year is None or year <= self.max_year)

    @property
    def series(self) -> str | None:
        """The 3-digit series named by the chassis, if it names exactly one ("W205" -> "205")."""
        found = set(re.findall(r"\d{3}", self.chassis or ""))
        return found.pop() if len(found) == 1 else None

    def describe(self) -> str:
        years = f"{self.min_year}-{'open' if self.max_year is None else self.max_year}"
        return f"na {'/'.join(self.wmi)} {'/'.join(self.codes)} {years} -> {self.parent}"


class VinRules(BaseModel):
    """Every rule of ``vin_rules.yaml``, checked for dangling WMIs and overlaps, and indexed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    wmi: dict[WmiCode, WmiInfo]
    eu: tuple[EuRule, ...]
    na: tuple[NaRule, ...]
    other_parents: tuple[str, ...] = ()

    _eu_by_series: dict[str, list[tuple[frozenset[str], EuRule]]] = PrivateAttr()
    _na_by_key: dict[tuple[str, str], list[NaRule]] = PrivateAttr()

    @model_validator(mode="after")
    def _check_and_index(self) -> VinRules:
        eu_by_series: dict[str, list[tuple[frozenset[str], EuRule]]] = {}
        for rule in self.eu:
            eu_by_series.setdefault(rule.series, []).append((self._eu_scope(rule), rule))
        for entries in eu_by_series.values():
            for (scope_a, a), (scope_b, b) in combinations(entries, 2):
                digits_a = set(range(10)) if a.body_digits is None else set(a.body_digits)
                digits_b = set(range(10)) if b.body_digits is None else set(b.body_digits)
                shared = scope_a & scope_b
                if shared and digits_a & digits_b:
                    raise ValueError(
                        f"EU rules overlap under {sorted(shared)}: {a.describe()!r} and "
                        f"{b.describe()!r}"
                    )

        na_by_key: dict[tuple[str, str], list[NaRule]] = {}
        for rule in self.na:
            for wmi in rule.wmi:
                self._require_layout(wmi, "na", rule.describe())
                for code in rule.codes:
                    na_by_key.setdefault((wmi, code), []).append(rule)
        for (wmi, code), rules in na_by_key.items():
            for a, b in combinations(rules, 2):
                if a.covers_year(b.min_year) or b.covers_year(a.min_year):
                    raise ValueError(
                        f"NA rules overlap for {wmi} {code}: {a.describe()!r} and {b.describe()!r}"
                    )

        self._eu_by_series = eu_by_series
        self._na_by_key = na_by_key
        return self

    def _require_layout(self, wmi: str, layout: str, where: str) -> None:
        info = self.wmi.get(wmi)
        if info is None:
            raise ValueError(f"rule {where!r} names WMI {wmi!r}, which is not in the wmi table")
        if info.layouts not in (layout, "both"):
            raise ValueError(
                f"rule {where!r} names WMI {wmi!r}, whose layouts are {info.layouts!r}"
            )

    def _eu_scope(self, rule: EuRule) -> frozenset[str]:
        if rule.wmi is not None:
            for wmi in rule.wmi:
                self._require_layout(wmi, "eu", rule.describe())
            return frozenset(rule.wmi)
        scope = frozenset(
            code
            for code, info in self.wmi.items()
            if rule.vehicle in info.vehicles and info.layouts != "na"
        )
        if not scope:
            raise ValueError(f"rule {rule.describe()!r}: no EU WMI carries {rule.vehicle!r}")
        return scope

    @property
    def parents(self) -> frozenset[str]:
        """Every parent some rule can name."""
        return frozenset(r.parent for r in (*self.eu, *self.na))

    def match_eu(self, wmi: str, baumuster: str) -> EuRule | None:
        """The rule for a 6-digit Baumuster (VIN positions 4-9) under this WMI, if any."""
        for scope, rule in self._eu_by_series.get(baumuster[:3], ()):
            if wmi in scope and rule.accepts_body_digit(baumuster[3]):
                return rule
        return None

    def match_na(self, wmi: str, code: str, year: int) -> NaRule | None:
        """The rule for VIN positions 4-5 under this WMI in this model year, if any."""
        for rule in self._na_by_key.get((wmi, code), ()):
            if rule.covers_year(year):
                return rule
        return None


@cache
def load_vin_rules(path: Path | str | None = None) -> VinRules:
    """Read and validate a rules file (None: the packaged rules); each file is read once per
    process. Cached by the name given too: resolving the path on every decode took 13 of a
    decode's 50 us."""
    return _load(None if path is None else Path(path).resolve())


@cache
def _load(path: Path | None) -> VinRules:
    text = (VIN_RULES_RESOURCE if path is None else path).read_text(encoding="utf-8")
    return VinRules.model_validate(yaml.safe_load(text))
