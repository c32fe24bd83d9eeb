"""The vehicle gate's score on photos, the service's way: decode and squash to the gate's size
(service/core/imaging.py), one onnxruntime run, the summed probability of the vehicle classes.

Prints one line per photo (highest score first): vehicle probability, whether it passes the
threshold, ImageNet top-1 and the photo. The figures the threshold was chosen from (README,
"The vehicle gate") came from this script; rerun it on real audit photos before changing it.

    .venv/bin/python scripts/gate_scores.py models/gate/vehicle_gate_224.onnx .data/photos/*/*.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from service.core.gate import vehicle_probabilities
from service.core.imaging import Limits, prepare_image
from service.inference.session import ClassifierConfig, build_gate_session, run_batch
from service.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gate", type=Path, help="gate model file (recognize export-gate)")
    parser.add_argument("photos", type=Path, nargs="+", help="JPEG, PNG or WebP photos")
    parser.add_argument(
        "--threshold",
        type=float,
        default=Settings.model_fields["vehicle_threshold"].default,
        help="vehicle threshold to mark passes by (default: the service's, %(default)s)",
    )
    args = parser.parse_args(argv)
    from timm.data import ImageNetInfo  # the models extra: only for the class names

    names = ImageNetInfo()
    session, gate = build_gate_session(ClassifierConfig(gate_model_path=args.gate))
    limits = Limits(max_pixels=1 << 40, min_side=1)
    rows = []
    for path in args.photos:
        image = prepare_image(
            path.read_bytes(), size=gate.input_size, interpolation=gate.interpolation, limits=limits
        ).array
        logits = run_batch(session, image[None])
        probability = float(vehicle_probabilities(logits, gate.vehicle_indices)[0])
        top1 = names.index_to_description(int(np.argmax(logits[0])))
        rows.append((probability, top1, path))
    print(f"{gate.name} @{gate.input_size} px, threshold {args.threshold:g}")
    for probability, top1, path in sorted(rows, key=lambda r: -r[0]):
        verdict = "vehicle" if probability >= args.threshold else "no_vehicle"
        print(f"{probability:7.4f}  {verdict:10s}  {top1[:40]:40s}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
