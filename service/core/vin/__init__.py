"""VIN decoding: a VIN's model code to the parent class a photo of the car must show.

Pure Python, no HTTP. Normalise and validate (length, alphabet), pick the layout (European
FIN or 49 CFR 565 VIN, with its check digit and model year), then look the model code up in
``service/core/data/vin_rules.yaml``. A code the rules do not cover gives no parent, never a
guessed one; a code they know as a generation or line without a class names it and no parent.
"""

from service.core.vin._checkdigit import check_digit
from service.core.vin._decoder import Generation, VinDecode, decode_vin
from service.core.vin._normalize import mask_vin, normalize_vin
from service.core.vin._rules import load_vin_rules

__all__ = [
    "Generation",
    "VinDecode",
    "check_digit",
    "decode_vin",
    "load_vin_rules",
    "mask_vin",
    "normalize_vin",
]
