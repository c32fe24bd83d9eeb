"""The audit workload's inputs, made on the spot: which photos and VINs, and how often each.

Photos come from ``loadtest/photos.py`` (real encodings with a photo's statistics): dealer
JPEGs and PNGs of about 460x706, and a few full-resolution phone photos.

VINs come in the kinds an audit portal sends: well-formed Mercedes-Benz VINs whose model code
names a parent class (the photo then matches or not), unknown model codes, other makes, and a
few malformed ones the service must refuse with 422 ``invalid_vin``. Every VIN is run through
the service's own decoder here, so its kind is what the service will see, not a guess: a VIN
that names no parent is of the kind of the decoder's reason (``service.core.reasons.Reason``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.photos import PHONE_SIZE, Photo, dealer_jpeg, dealer_png, phone_jpeg
from service.core.errors import InvalidVIN
from service.core.reasons import Reason
from service.core.vin import check_digit, decode_vin, load_vin_rules

# VIN kinds, and how often the audit workload sends each (a few percent invalid ones). A VIN
# that names no parent class is of the kind of the decoder's reason for it.
KNOWN = "known_parent"
UNKNOWN = Reason.UNKNOWN_MODEL_CODE
NOT_MERCEDES = Reason.VIN_NOT_MERCEDES
INVALID = "invalid"
VIN_MIX: dict[str, float] = {KNOWN: 0.82, UNKNOWN: 0.07, NOT_MERCEDES: 0.07, INVALID: 0.04}

C_CLASS_VIN = "WDD2052041F123456"  # decodes to C-Class (EU FIN, Baumuster 205204)
GLE_VIN = "4JGFB4KB3LA123456"  # decodes to GLE-Class (North-American VIN, model year 2020)


@dataclass(frozen=True)
class AuditVin:
    vin: str
    kind: str  # one of VIN_MIX's keys
    expected_parent: str | None


# --- photos ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoMix:
    """Dealer JPEGs, dealer PNGs and phone photos, and how often each kind is sent."""

    jpegs: Sequence[Photo]
    pngs: Sequence[Photo]
    phones: Sequence[Photo]
    png_share: float
    phone_share: float

    def pick(self, rng: random.Random) -> Photo:
        roll = rng.random()
        if self.phones and roll < self.phone_share:
            return rng.choice(self.phones)
        if self.pngs and roll < self.phone_share + self.png_share:
            return rng.choice(self.pngs)
        return rng.choice(self.jpegs)

    def describe(self) -> str:
        dealer = [*self.jpegs, *self.pngs]
        mean_w = sum(p.width for p in dealer) / len(dealer)
        mean_h = sum(p.height for p in dealer) / len(dealer)
        mean_kb = sum(len(p.data) for p in self.jpegs) / len(self.jpegs) / 1024
        phone_mb = (
            sum(len(p.data) for p in self.phones) / len(self.phones) / 2**20 if self.phones else 0
        )
        return (
            f"{len(self.jpegs)} dealer JPEGs (mean {mean_w:.0f}x{mean_h:.0f}, {mean_kb:.0f} KB), "
            f"{len(self.pngs)} PNGs ({self.png_share:.0%}), {len(self.phones)} phone photos "
            f"{PHONE_SIZE[0]}x{PHONE_SIZE[1]} ({phone_mb:.1f} MB, {self.phone_share:.0%})"
        )


def photo_mix(
    *,
    jpegs: int = 32,
    pngs: int = 6,
    phones: int = 2,
    png_share: float = 0.08,
    phone_share: float = 0.03,
    seed: int = 0,
) -> PhotoMix:
    rng = random.Random(seed)
    return PhotoMix(
        jpegs=[dealer_jpeg(rng, i) for i in range(jpegs)],
        pngs=[dealer_png(rng, i) for i in range(pngs)],
        phones=[phone_jpeg(rng, i) for i in range(phones)],
        png_share=png_share,
        phone_share=phone_share,
    )


# --- VINs ------------------------------------------------------------------------------------

_SERIAL_CHARS = "0123456789"
_EU_PLANTS = "AFHJNRX"


def _serial(rng: random.Random, length: int = 6) -> str:
    return "".join(rng.choice(_SERIAL_CHARS) for _ in range(length))


def with_check_digit(vin: str) -> str:
    """The VIN with position 9 set to its 49 CFR 565 check digit."""
    return vin[:8] + check_digit(vin) + vin[9:]


def _known_candidates(rng: random.Random) -> list[str]:
    """European FINs built from the decoder's own car rules, plus North-American GLE VINs."""
    rules = load_vin_rules()
    candidates = []
    for rule in rules.eu:
        if rule.vehicle != "car":
            continue
        wmis = rule.wmi or ("WDD", "W1K")
        body = rng.choice(rule.body_digits) if rule.body_digits else "2"
        baumuster = f"{rule.series}{body}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        candidates.append(f"{rng.choice(wmis)}{baumuster}1{rng.choice(_EU_PLANTS)}{_serial(rng)}")
    for _ in range(4):
        candidates.append(with_check_digit(f"{GLE_VIN[:11]}{_serial(rng)}"))
    return candidates


def _candidates(kind: str, rng: random.Random) -> list[str]:
    if kind == KNOWN:
        return _known_candidates(rng)
    if kind == UNKNOWN:
        return [
            f"{wmi}{series}2041F{_serial(rng)}"
            for wmi in ("WDD", "W1K")
            for series in ("999", "998", "997")
        ]
    if kind == NOT_MERCEDES:
        return [
            f"WVWZZZ1KZ6W{_serial(rng)}",  # Volkswagen, European layout
            f"VF1RFB00{rng.randint(0, 9)}6{_serial(rng)}",  # Renault
            f"ZFA31200000{_serial(rng)}",  # Fiat
            with_check_digit(f"1HGCM82633A{_serial(rng)}"),  # Honda, North American
            with_check_digit(f"JTDKB20U09{rng.randint(0, 9)}{_serial(rng)}"),  # Toyota
        ]
    good = C_CLASS_VIN
    bad_check = GLE_VIN[:8] + ("0" if GLE_VIN[8] != "0" else "1") + GLE_VIN[9:]
    return [
        good[:-1],  # 16 characters
        good + "7",  # 18 characters
        good[:5] + "O" + good[6:],  # O is not in the VIN alphabet
        good[:10] + "I" + good[11:],  # nor is I
        bad_check,  # North-American VIN with a wrong check digit
        "WDD 205204 1F1234",  # spaces and too short
    ]


def _kind_of(vin: str) -> tuple[str, str | None]:
    try:
        decoded = decode_vin(vin)
    except InvalidVIN:
        return INVALID, None
    if decoded.expected_parent is not None:
        return KNOWN, decoded.expected_parent
    if Reason.VIN_NOT_MERCEDES in decoded.reasons:
        return NOT_MERCEDES, None
    return UNKNOWN, None


def vin_pool(seed: int = 0, per_kind: int = 40) -> dict[str, list[AuditVin]]:
    """VINs of every kind, each checked with the service's decoder (kind = what it decodes to)."""
    rng = random.Random(seed)
    pool: dict[str, list[AuditVin]] = {kind: [] for kind in VIN_MIX}
    for kind in VIN_MIX:
        seen: set[str] = set()
        for _ in range(8):
            for vin in _candidates(kind, rng):
                actual, parent = _kind_of(vin)
                if actual == kind and vin not in seen:
                    seen.add(vin)
                    pool[kind].append(AuditVin(vin, kind, parent))
            if len(pool[kind]) >= per_kind:
                break
        if not pool[kind]:
            raise RuntimeError(f"no VIN of kind {kind} decodes as expected; vin_rules changed?")
    return pool


@dataclass(frozen=True)
class VinMix:
    pool: dict[str, list[AuditVin]]
    weights: dict[str, float]

    def pick(self, rng: random.Random) -> AuditVin:
        kind = rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        return rng.choice(self.pool[kind])

    def describe(self) -> str:
        parents = {v.expected_parent for v in self.pool[KNOWN]}
        shares = ", ".join(f"{kind} {share:.0%}" for kind, share in self.weights.items())
        return f"VINs: {shares}; known VINs name {len(parents)} parent classes"


def vin_mix(seed: int = 0, weights: dict[str, float] | None = None) -> VinMix:
    return VinMix(vin_pool(seed), dict(weights or VIN_MIX))
