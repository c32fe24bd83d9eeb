"""Why a verdict is what it is: the one vocabulary of reasons, shared by the VIN decoder, the
verdict, the metrics and the load test. A response lists them in ``reasons``."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # From the photo's classification (service.core.verdict).
    LOW_CONFIDENCE = "low_confidence"  # no parent carries enough probability either way
    PARENT_MISMATCH = "parent_mismatch"  # another parent is clearly shown
    CLASS_DISABLED = "class_disabled"  # the evidence lies on classes switched off in the taxonomy
    PARENT_NOT_SUPPORTED = "parent_not_supported"  # the VIN's parent is not among the model's
    # From the vehicle gate (service.core.gate): the photo shows no car, van, truck or bus.
    NO_VEHICLE = "no_vehicle"
    # From the VIN (service.core.vin): no parent to check the photo against.
    UNKNOWN_MODEL_CODE = "unknown_model_code"  # a Mercedes-Benz VIN whose code no rule covers
    VIN_NOT_MERCEDES = "vin_not_mercedes"  # the WMI is not one of the Mercedes-Benz group's
    # A known Mercedes-Benz series (or NA code) of a generation or model line the taxonomy has no
    # class for: a 1990s E-Class W124, a Sprinter T1N. The decode names it in ``generation``.
    GENERATION_NOT_SUPPORTED = "generation_not_supported"
    # A known series shared by model lines the taxonomy tells apart and the VIN does not: W447 is
    # the V-Class MPV and the Vito van alike. The decode names it in ``generation``.
    MODEL_LINE_AMBIGUOUS = "model_line_ambiguous"
