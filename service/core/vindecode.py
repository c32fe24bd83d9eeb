"""Decode a VIN with the rules file a service runs with (setting ``vin_rules_path``).

``service.core.vin.decode_vin`` always reads the packaged Mercedes-Benz rules
(``service/core/data/vin_rules.yaml``). A service that serves a model of another taxonomy
(``taxonomy_path``) needs VINs that name that taxonomy's parents: a rules file of the same
format, read with the loader's path parameter (``load_vin_rules(path)``). This module runs the
decoder's own steps (layout, EU or North-American rules) against such a file, so the decoding
logic stays the decoder's; None decodes exactly as ``decode_vin``.
"""

from __future__ import annotations

from pathlib import Path

from service.core.vin import VinDecode, decode_vin, load_vin_rules, normalize_vin
from service.core.vin._decoder import _decode_eu, _decode_na, _layout


def decode_with_rules(text: str, rules_path: Path | str | None = None) -> VinDecode:
    """``decode_vin`` against the rules file at ``rules_path`` (None: the packaged rules)."""
    if rules_path is None:
        return decode_vin(text)
    vin = normalize_vin(text)
    rules = load_vin_rules(rules_path)
    info = rules.wmi.get(vin[:3])
    if _layout(vin, info) == "eu":
        return _decode_eu(vin, info, rules)
    return _decode_na(vin, info, rules)
