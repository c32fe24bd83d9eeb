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

from service.core.reasons import Reason
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
# The reasons an entry of ``no_class`` may give (service.core.reasons).
NoClassReason = Literal[Reason.GENERATION_NOT_SUPPORTED, Reason.MODEL_LINE_AMBIGUOUS]


class WmiInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    manufacturer: str = Field(min_length=1)
    layouts: Literal["eu", "na", "both"]
    vehicles: tuple[Vehicle, ...] = ()
    first_model_year: ModelYear | None = None


class _EuKey(BaseModel):
    """What an EU entry matches: series (VIN positions 4-6) and body digit (position 7)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: str = Field(pattern=r"^\d{3}$")
    body_digits: tuple[BodyDigit, ...] | None = Field(default=None, min_length=1)
    vehicle: Vehicle = "car"
    wmi: tuple[WmiCode, ...] | None = Field(default=None, min_length=1)

    def accepts_body_digit(self, digit: str) -> bool:
        return self.body_digits is None or int(digit) in self.body_digits

    def _key(self) -> str:
        digits = "any" if self.body_digits is None else ",".join(map(str, self.body_digits))
        return f"eu {self.series}.{digits}"


class _NaKey(BaseModel):
    """What an NA entry matches: WMI, VIN positions 4-5 and a model-year range."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wmi: tuple[WmiCode, ...] = Field(min_length=1)
    codes: tuple[NaCode, ...] = Field(min_length=1)
    min_year: ModelYear
    max_year: ModelYear | None

    @model_validator(mode="after")
    def _year_order(self) -> _NaKey:
        if self.max_year is not None and self.max_year < self.min_year:
            raise ValueError(f"max_year {self.max_year} is before min_year {self.min_year}")
        return self

    def covers_year(self, year: int) -> bool:
        return self.min_year <= year and (self.max_year is None or year <= self.max_year)

    def _key(self) -> str:
        years = f"{self.min_year}-{'open' if self.max_year is None else self.max_year}"
        return f"na {'/'.join(self.wmi)} {'/'.join(self.codes)} {years}"


class _Rule(BaseModel):
    parent: str = Field(min_length=1)
    body: Body | None
    chassis: str | None = None


class EuRule(_Rule, _EuKey):
    """Baumuster rule: series (VIN positions 4-6) and body digit (position 7) name a parent."""

    def describe(self) -> str:
        return f"{self._key()} -> {self.parent}"


class NaRule(_Rule, _NaKey):
    """North-American rule: WMI, VIN positions 4-5 and a model-year range name a parent."""

    @property
    def series(self) -> str | None:
        """The 3-digit series named by the chassis, if it names exactly one ("W205" -> "205")."""
        found = set(re.findall(r"\d{3}", self.chassis or ""))
        return found.pop() if len(found) == 1 else None

    def describe(self) -> str:
        return f"{self._key()} -> {self.parent}"


class _NoClass(BaseModel):
    """A known Mercedes-Benz series or code that names no parent the model could match."""

    name: str = Field(min_length=1)
    years: str = Field(pattern=r"^\d{4}-(\d{4})?$")
    reason: NoClassReason = Reason.GENERATION_NOT_SUPPORTED


class EuNoClass(_NoClass, _EuKey):
    """An EU series (and body digits) of a generation or line the taxonomy has no class for."""

    def describe(self) -> str:
        return f"{self._key()} -> no class ({self.name})"


class NaNoClass(_NoClass, _NaKey):
    """An NA code of a generation or line the taxonomy has no class for."""

    series: str | None = Field(pattern=r"^\d{3}$")

    def describe(self) -> str:
        return f"{self._key()} -> no class ({self.name})"


class NoClassEntries(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    eu: tuple[EuNoClass, ...] = ()
    na: tuple[NaNoClass, ...] = ()


EuEntry = EuRule | EuNoClass
NaEntry = NaRule | NaNoClass


class VinRules(BaseModel):
    """Every entry of ``vin_rules.yaml``, checked for dangling WMIs and overlaps, and indexed.

    Rules (``eu``, ``na``) name a parent; ``no_class`` entries name a known series that has none.
    No two entries of either kind may match the same VIN, so a lookup never depends on order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    wmi: dict[WmiCode, WmiInfo]
    eu: tuple[EuRule, ...]
    na: tuple[NaRule, ...]
    no_class: NoClassEntries = NoClassEntries()
    other_parents: tuple[str, ...] = ()

    _eu_by_series: dict[str, list[tuple[frozenset[str], EuEntry]]] = PrivateAttr()
    _na_by_key: dict[tuple[str, str], list[NaEntry]] = PrivateAttr()

    @model_validator(mode="after")
    def _check_and_index(self) -> VinRules:
        eu_by_series: dict[str, list[tuple[frozenset[str], EuEntry]]] = {}
        for eu_entry in (*self.eu, *self.no_class.eu):
            scope = self._eu_scope(eu_entry)
            eu_by_series.setdefault(eu_entry.series, []).append((scope, eu_entry))
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

        na_by_key: dict[tuple[str, str], list[NaEntry]] = {}
        for na_entry in (*self.na, *self.no_class.na):
            for wmi in na_entry.wmi:
                self._require_layout(wmi, "na", na_entry.describe())
                for code in na_entry.codes:
                    na_by_key.setdefault((wmi, code), []).append(na_entry)
        for (wmi, code), found in na_by_key.items():
            for a, b in combinations(found, 2):
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

    def _eu_scope(self, entry: EuEntry) -> frozenset[str]:
        if entry.wmi is not None:
            for wmi in entry.wmi:
                self._require_layout(wmi, "eu", entry.describe())
            return frozenset(entry.wmi)
        scope = frozenset(
            code
            for code, info in self.wmi.items()
            if entry.vehicle in info.vehicles and info.layouts != "na"
        )
        if not scope:
            raise ValueError(f"rule {entry.describe()!r}: no EU WMI carries {entry.vehicle!r}")
        return scope

    @property
    def parents(self) -> frozenset[str]:
        """Every parent some rule can name."""
        return frozenset(r.parent for r in (*self.eu, *self.na))

    def match_eu(self, wmi: str, baumuster: str) -> EuEntry | None:
        """The entry for a 6-digit Baumuster (VIN positions 4-9) under this WMI, if any."""
        for scope, entry in self._eu_by_series.get(baumuster[:3], ()):
            if wmi in scope and entry.accepts_body_digit(baumuster[3]):
                return entry
        return None

    def match_na(self, wmi: str, code: str, year: int) -> NaEntry | None:
        """The entry for VIN positions 4-5 under this WMI in this model year, if any."""
        for entry in self._na_by_key.get((wmi, code), ()):
            if entry.covers_year(year):
                return entry
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
