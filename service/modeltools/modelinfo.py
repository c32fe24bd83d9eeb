"""`recognize model-info FILE`: what a model file says about itself, as JSON.

The ``recognize`` metadata entry (``service/core/modelfile.py``: architecture, version, input
size, preprocessing, classes) and, for a calibrated file, the ``recognize.calibration`` entry
(``service/core/calibration.py``: temperature, thresholds, certificate), both validated as the
service validates them. With the ``models`` extra (onnx) it also checks that the calibration
was made for this very graph (``certificate.model_sha256``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import onnxruntime as ort

from service.core.calibration import parse_calibration
from service.core.errors import ModelContractError
from service.core.modelfile import parse_metadata


def model_info(path: Path) -> dict[str, Any]:
    """The file's metadata and calibration; raises ModelContractError for a broken file."""
    if not path.is_file():
        raise ModelContractError(f"model file {path} does not exist")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unexported exception types
        raise ModelContractError(f"onnxruntime cannot load {path}: {exc}") from exc
    custom = session.get_modelmeta().custom_metadata_map
    metadata = parse_metadata(custom, source=str(path))
    calibration = parse_calibration(custom, source=str(path))
    info: dict[str, Any] = {
        "file": str(path),
        "metadata": metadata.model_dump(mode="json", exclude={"classes"}),
        "classes": len(metadata.classes),
        "parents": list(dict.fromkeys(c.parent for c in metadata.classes)),
        "calibrated": calibration is not None,
        "calibration": None if calibration is None else calibration.model_dump(mode="json"),
    }
    if calibration is not None:
        try:
            from service.modeltools.calibrate import graph_sha256
        except ImportError:  # no onnx: the serving install
            info["calibration_fits_graph"] = None
        else:
            info["calibration_fits_graph"] = (
                graph_sha256(path) == calibration.certificate.model_sha256
            )
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="recognize model-info",
        description="Print a model file's metadata and calibration (certificate) as JSON.",
    )
    parser.add_argument("model", type=Path, help="an ONNX model file")
    args = parser.parse_args(argv)
    try:
        info = model_info(args.model)
    except ModelContractError as exc:
        print(f"recognize model-info: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=1))
    return 1 if info.get("calibration_fits_graph") is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
