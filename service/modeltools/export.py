"""Export a timm ConvNeXt or Swin classifier to an ONNX file the service can serve.

The exported graph follows the model-file contract of ``service/modelfile.py``: input ``image``
(uint8 ``[batch, H, W, 3]`` RGB), output ``logits`` (float32 ``[batch, C]``, C = the taxonomy's
classes in file order). The cast, scaling to [0, 1], mean/std normalisation (timm's pretrained
config for the architecture) and the NHWC -> NCHW transpose run inside the graph, and the
``recognize`` metadata entry records them, so serving never re-implements preprocessing.

Weights come from a local checkpoint (a timm/torch state dict, optionally wrapped under
``state_dict`` or ``model``; ``.safetensors`` too) or, with ``--demo``, from a seeded random
initialisation. Nothing is downloaded.

Every export is checked before it lands at ``--out``: ``onnx.checker``, the input/output contract,
the metadata read back through onnxruntime and checked against the taxonomy, and numeric parity
(one seeded uint8 batch through the torch model and through onnxruntime on the CPU). A file that
fails a check is not written.

The demo model (random weights, arbitrary predictions; built, never committed)::

    recognize export --demo --seed 0 --out models/demo/convnext_tiny_224_demo.onnx

A trained checkpoint::

    recognize export --arch swinv2_tiny_window8_256 --checkpoint runs/best.pth \\
        --out models/swinv2_tiny_256.onnx --report models/swinv2_tiny_256.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import timm
import torch
from pydantic import ValidationError
from torch import nn

from service.core.errors import ModelContractError
from service.core.gate import GateMetadata
from service.core.modelfile import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    ModelMetadata,
    metadata_for_taxonomy,
    parse_metadata,
)
from service.core.taxonomy import Taxonomy, load_taxonomy
from service.settings import DEMO_MODEL

log = logging.getLogger("recognize.export")

# EfficientNet: timm's efficientnet_* and tf_efficientnet_* (e.g. tf_efficientnet_lite0, whose
# ImageNet weights service/modeltools/pretrained.py loads), with a head of any size.
SUPPORTED_FAMILIES = ("convnext", "swin", "efficientnet", "tf_efficientnet")
EXPORTERS = ("legacy", "dynamo")
DEFAULT_OPSET = 17
# The dynamo exporter emits opset 18 at least; asking it for 17 only triggers a failing
# down-conversion (and leaves the model at 18 anyway).
DYNAMO_MIN_OPSET = 18
FP32_TOLERANCE = 1e-3
# fp16 logits are compared with the fp32 torch model (the weights as trained), so the tolerance
# covers half-precision rounding, not only export errors.
FP16_TOLERANCE = 5e-2
# Trace with a batch of 2 and check parity with 3: a batch axis baked into the graph as a
# constant fails the check instead of shipping (a batch of 1 would also get specialised).
TRACE_BATCH = 2
PARITY_BATCH = 3
PARITY_SEED = 1234
# Protobuf cannot serialise more than 2 GiB: bigger models keep their weights in <out>.data.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000


class ExportError(Exception):
    """The export cannot produce a servable model file; the message says why."""


class ParityError(ExportError):
    """onnxruntime's logits differ from the torch model's by more than the tolerance."""


class UInt8ImageClassifier(nn.Module):
    """The serving contract around a timm classifier: uint8 NHWC RGB in, float32 logits out."""

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add; kept in float32 even for fp16
        # models, it costs nothing next to the network and loses no precision.
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", -mean_t / std_t, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # Transpose while still uint8: a quarter of the bytes a float32 transpose would move.
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        x = x * self.scale + self.shift
        return self.model(x.to(self.compute_dtype)).to(torch.float32)


@dataclass(frozen=True)
class ExportReport:
    """What an export produced; printed as JSON by the command and written by ``--report``."""

    path: str
    name: str
    arch: str
    version: str
    input_size: int
    precision: str
    exporter: str
    opset: int
    params: int
    num_classes: int
    taxonomy_version: str
    source: str
    file_size_mb: float
    export_seconds: float
    total_seconds: float
    max_abs_diff: float | None
    parity_tolerance: float | None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def check_arch(arch: str) -> None:
    """Refuse architectures timm does not know, or outside the families this tool is tested on."""
    if arch not in timm.list_models():
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
        raise ExportError(f"timm has no architecture '{arch}' (similar: {close or 'none'})")
    if not arch.startswith(SUPPORTED_FAMILIES):
        raise ExportError(
            f"architecture '{arch}' is not a ConvNeXt, Swin or EfficientNet model; supported "
            "families: "
            f"{', '.join(f'{f}*' for f in SUPPORTED_FAMILIES)}"
        )


def resolve_input_size(
    arch: str, input_size: int | None, arch_kwargs: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """The square input size to export at, and the create_model kwargs that build for it.

    Defaults to the architecture's native size (timm's pretrained config). Swin models have a
    fixed input size, so another size is passed on to timm as ``img_size``.
    """
    cfg = timm.get_pretrained_cfg(arch)
    native = cfg.input_size[-1] if cfg is not None else 224
    kwargs = dict(arch_kwargs)
    requested = kwargs.get("img_size")
    if isinstance(requested, (list, tuple)):
        if len(set(requested)) != 1:
            raise ExportError(f"img_size must be square (got {requested})")
        requested = requested[0]
    size = input_size or requested or native
    if requested is not None and requested != size:
        raise ExportError(f"--input-size {size} contradicts img_size={requested} in arch kwargs")
    if cfg is not None and cfg.fixed_input_size and size != native and requested is None:
        kwargs["img_size"] = size
    return int(size), kwargs


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint file, unwrapped from ``state_dict``/``model`` if needed."""
    if not path.is_file():
        raise ExportError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path))
        else:
            # weights_only: a checkpoint is data, never code. timm's train script also stores
            # its argparse Namespace, which is harmless to allow.
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(f"cannot read checkpoint {path}: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                log.info("checkpoint %s: using the state dict under '%s'", path, key)
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ExportError(f"checkpoint {path} holds no state dict (got {type(obj).__name__})")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ExportError(
            f"checkpoint {path} is not a state dict: non-tensor entries {not_tensors[:5]}"
        )
    if all(k.startswith("module.") for k in obj):  # saved from DistributedDataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def load_weights(
    model: nn.Module, state_dict: dict[str, torch.Tensor], *, source: str, arch: str
) -> None:
    """Load a state dict strictly, with an error that names what does not fit."""
    expected = model.state_dict()
    head_key = f"{model.pretrained_cfg.get('classifier') or 'head.fc'}.weight"
    head = state_dict.get(head_key)
    if head is not None and head_key in expected and head.shape[0] != expected[head_key].shape[0]:
        raise ExportError(
            f"checkpoint {source} has a {head.shape[0]}-class head ({head_key} "
            f"{tuple(head.shape)}) but the taxonomy has {expected[head_key].shape[0]} classes: "
            "the model's outputs must be the taxonomy's classes in file order (fine-tune on "
            "the taxonomy, or pass the --taxonomy it was trained on)"
        )
    mismatched = [
        f"{k} {tuple(v.shape)} (model {tuple(expected[k].shape)})"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if mismatched:
        raise ExportError(
            f"checkpoint {source} does not fit {arch}: {len(mismatched)} tensors have other "
            f"shapes: {mismatched[:5]}{' ...' if len(mismatched) > 5 else ''} "
            "(another --arch, --input-size or --arch-kwargs?)"
        )
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing, unexpected = result.missing_keys, result.unexpected_keys
        raise ExportError(
            f"checkpoint {source} does not fit {arch}: "
            f"{len(missing)} missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''} (is --arch right?)"
        )


def build_model(
    arch: str,
    num_classes: int,
    *,
    checkpoint: Path | None = None,
    seed: int | None = None,
    arch_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """A timm model in eval mode with the checkpoint's weights, or seeded random ones."""
    if (checkpoint is None) == (seed is None):
        raise ExportError("give exactly one of a checkpoint or a demo seed")
    if seed is not None:
        torch.manual_seed(seed)
    try:
        # pretrained=False always: weights come from the checkpoint, never from the hub.
        model = timm.create_model(
            arch, pretrained=False, num_classes=num_classes, **(arch_kwargs or {})
        )
    except (TypeError, ValueError, AssertionError) as exc:
        raise ExportError(f"timm cannot build {arch} with {arch_kwargs or {}}: {exc}") from exc
    if checkpoint is not None:
        load_weights(model, read_checkpoint(checkpoint), source=str(checkpoint), arch=arch)
    return model.eval()


def export_onnx(
    wrapper: nn.Module, path: Path, *, input_size: int, opset: int, exporter: str
) -> None:
    """Trace ``wrapper`` to ``path`` with a dynamic batch axis named "batch"."""
    example = torch.randint(
        0,
        256,
        (TRACE_BATCH, input_size, input_size, 3),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(PARITY_SEED),
    )
    # The exporters restore the module's previous mode afterwards; it must be eval throughout.
    wrapper.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is chosen on purpose (its graphs ran 15-25% faster at batch 8 on
        # a 2-core CPU and used less memory than the dynamo exporter's, when measured), and
        # timm's shape asserts raise TracerWarnings; a batch size baked into the graph would
        # fail the parity check, which runs another batch size.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        if exporter == "legacy":
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
            )
        elif exporter == "dynamo":
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
                opset_version=max(opset, DYNAMO_MIN_OPSET),
                verbose=False,
            )
        else:
            raise ExportError(f"unknown exporter '{exporter}' (choose from {EXPORTERS})")


def write_model_file(
    exported: Path,
    out: Path,
    metadata: ModelMetadata | GateMetadata,
    *,
    key: str = METADATA_KEY,
) -> None:
    """Re-save the exporter's output at ``out`` with the metadata entry ``key`` (``recognize``
    for a classifier, ``recognize_gate`` for a vehicle gate)."""
    model = onnx.load(str(exported))  # also reads the dynamo exporter's external .data file
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=key, value=metadata.to_json())
    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    large = weight_bytes > EXTERNAL_DATA_THRESHOLD_BYTES
    onnx.save_model(
        model,
        str(out),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=f"{out.name}.data",
        size_threshold=1024,
    )


def check_contract(
    session: ort.InferenceSession, taxonomy: Taxonomy, *, input_size: int, source: str
) -> ModelMetadata:
    """Check the file's input/output signature and its metadata, as the service will see them."""
    (inp,) = session.get_inputs()
    (outp,) = session.get_outputs()
    expected = [
        (inp.name, INPUT_NAME),
        (inp.type, "tensor(uint8)"),
        (inp.shape, ["batch", input_size, input_size, 3]),
        (outp.name, OUTPUT_NAME),
        (outp.type, "tensor(float)"),
        (outp.shape, ["batch", len(taxonomy.classes)]),
    ]
    wrong = [f"{got!r} (expected {want!r})" for got, want in expected if got != want]
    if wrong:
        raise ExportError(f"{source} breaks the input/output contract: {', '.join(wrong)}")
    custom = session.get_modelmeta().custom_metadata_map
    try:
        metadata = parse_metadata(custom, source=source)
        metadata.check_against(taxonomy)
    except ModelContractError as exc:
        raise ExportError(str(exc)) from exc
    if [c.id for c in metadata.classes] != [c.id for c in taxonomy.classes]:
        raise ExportError(f"{source}: metadata classes are not in the taxonomy's file order")
    return metadata


def parity_batch(input_size: int, batch: int = PARITY_BATCH) -> torch.Tensor:
    """The seeded uint8 ``[batch, H, W, 3]`` images both runtimes see."""
    generator = torch.Generator().manual_seed(PARITY_SEED)
    return torch.randint(
        0, 256, (batch, input_size, input_size, 3), dtype=torch.uint8, generator=generator
    )


def max_abs_diff(
    session: ort.InferenceSession, images: torch.Tensor, expected: np.ndarray
) -> float:
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    if logits.shape != expected.shape:
        raise ParityError(f"onnxruntime returned {logits.shape}, torch {expected.shape}")
    return float(np.max(np.abs(logits.astype(np.float64) - expected.astype(np.float64))))


def export_model(
    out: Path | str,
    *,
    arch: str = "convnext_tiny",
    checkpoint: Path | str | None = None,
    seed: int | None = None,
    input_size: int | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    version: str | None = None,
    opset: int = DEFAULT_OPSET,
    exporter: str = "legacy",
    fp16: bool = False,
    taxonomy_path: Path | str | None = None,
    parity: bool = True,
    tolerance: float | None = None,
) -> ExportReport:
    """Export, check and write one model file; raise :class:`ExportError` if any check fails."""
    started = time.perf_counter()
    out = Path(out)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter '{exporter}' (choose from {', '.join(EXPORTERS)})")
    if opset < DEFAULT_OPSET:
        raise ExportError(f"opset must be {DEFAULT_OPSET} or newer (got {opset})")
    check_arch(arch)
    taxonomy = load_taxonomy(taxonomy_path)
    num_classes = len(taxonomy.classes)
    size, kwargs = resolve_input_size(arch, input_size, arch_kwargs or {})
    precision = "fp16" if fp16 else "fp32"
    tolerance = tolerance if tolerance is not None else (FP16_TOLERANCE if fp16 else FP32_TOLERANCE)

    model = build_model(arch, num_classes, checkpoint=checkpoint, seed=seed, arch_kwargs=kwargs)
    cfg = model.pretrained_cfg
    try:  # validated before the slow part: size bounds, interpolation names, class list
        metadata = metadata_for_taxonomy(
            taxonomy,
            name=name or out.stem,
            arch=arch,
            version=version or (checkpoint.stem if checkpoint else f"demo-seed{seed}"),
            input_size=size,
            interpolation=cfg.get("interpolation") or "bicubic",
            mean=tuple(cfg.get("mean") or timm.data.IMAGENET_DEFAULT_MEAN),
            std=tuple(cfg.get("std") or timm.data.IMAGENET_DEFAULT_STD),
            precision=precision,
        )
    except ValidationError as exc:
        raise ExportError(f"cannot describe {arch} in the model metadata: {exc}") from exc

    wrapper = UInt8ImageClassifier(model, metadata.mean, metadata.std).eval()
    images = parity_batch(size)
    if parity:  # always against float32 torch: for fp16 this measures what halving costs
        with torch.no_grad():
            expected = wrapper(images).numpy()
    if fp16:
        model.half()
        wrapper.compute_dtype = torch.float16

    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is built and checked in a scratch folder beside `out`; only a model that passes
    # every check is moved into place.
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as scratch:
        traced = Path(scratch) / "traced" / "model.onnx"
        traced.parent.mkdir()
        log.info("exporting %s @%d (%s, %s exporter)", arch, size, precision, exporter)
        export_started = time.perf_counter()
        try:
            export_onnx(wrapper, traced, input_size=size, opset=opset, exporter=exporter)
        except Exception as exc:
            raise ExportError(f"torch.onnx ({exporter}) cannot export {arch}: {exc}") from exc
        export_seconds = time.perf_counter() - export_started

        candidate = Path(scratch) / out.name
        write_model_file(traced, candidate, metadata)
        try:
            onnx.checker.check_model(str(candidate))  # path-based: works past 2 GiB too
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"onnx.checker rejects the exported model: {exc}") from exc
        opset_written = next(
            o.version
            for o in onnx.load(str(candidate), load_external_data=False).opset_import
            if o.domain in ("", "ai.onnx")
        )

        try:
            session = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own, unexported exception types
            raise ExportError(f"onnxruntime cannot load the exported model: {exc}") from exc
        check_contract(session, taxonomy, input_size=size, source=str(out))
        diff = None
        if parity:
            diff = max_abs_diff(session, images, expected)
            log.info("parity: max |logit difference| %.3g (tolerance %g)", diff, tolerance)
            if not diff < tolerance:
                raise ParityError(
                    f"onnxruntime and torch disagree: max |logit difference| {diff:.3g} "
                    f">= tolerance {tolerance:g} ({arch}, {precision}, {exporter} exporter); "
                    f"the model was not written to {out}"
                )
        del session

        written_data = candidate.with_name(f"{candidate.name}.data")
        data_file = out.with_name(written_data.name)
        os.replace(candidate, out)
        if written_data.exists():
            os.replace(written_data, data_file)
        elif data_file.exists():  # weights of an earlier, larger export of the same name
            data_file.unlink()

    file_bytes = out.stat().st_size + (data_file.stat().st_size if data_file.exists() else 0)
    return ExportReport(
        path=str(out),
        name=metadata.name,
        arch=arch,
        version=metadata.version,
        input_size=size,
        precision=precision,
        exporter=exporter,
        opset=opset_written,
        params=sum(p.numel() for p in model.parameters()),
        num_classes=num_classes,
        taxonomy_version=taxonomy.version,
        source=str(checkpoint) if checkpoint else f"demo (random weights, seed {seed})",
        file_size_mb=round(file_bytes / 1e6, 2),
        export_seconds=round(export_seconds, 2),
        total_seconds=round(time.perf_counter() - started, 2),
        max_abs_diff=diff,
        parity_tolerance=tolerance if parity else None,
        arch_kwargs=kwargs,
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recognize export",
        description="Export a timm ConvNeXt or Swin classifier to a servable ONNX file: uint8 "
        "NHWC input 'image', float32 output 'logits', preprocessing and class list inside.",
        epilog=f"Demo model (random weights): recognize export --demo --seed 0 --out {DEMO_MODEL}",
    )
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="timm/torch state dict (.pth/.pt, optionally under 'state_dict' or 'model'; or "
        ".safetensors) whose head has one output per taxonomy class",
    )
    weights.add_argument(
        "--demo",
        action="store_true",
        help="seeded random weights instead of a checkpoint (predictions are arbitrary)",
    )
    parser.add_argument("--seed", type=int, help="seed of the --demo weights (default: 0)")
    parser.add_argument(
        "--arch",
        default="convnext_tiny",
        help="timm architecture, convnext* or swin* (default: convnext_tiny)",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        metavar="PX",
        help="square input size (default: the architecture's native size from timm's "
        "pretrained config, e.g. 224 for convnext_tiny, 256 for swinv2_tiny_window8_256)",
    )
    parser.add_argument(
        "--arch-kwargs",
        type=_json_object,
        default={},
        metavar="JSON",
        help="extra timm.create_model kwargs as a JSON object, e.g. '{\"drop_path_rate\": 0}' "
        "(default: {})",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="PATH", help="ONNX file to write (required)"
    )
    parser.add_argument("--name", help="model name in the metadata (default: the --out file stem)")
    parser.add_argument(
        "--version",
        help="model version in the metadata (default: demo-seed<N>, or the checkpoint file stem)",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {DEFAULT_OPSET} or newer (default: {DEFAULT_OPSET}; the dynamo "
        f"exporter writes {DYNAMO_MIN_OPSET} at least)",
    )
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="legacy",
        help="torch.onnx exporter: legacy (TorchScript) graphs ran faster and leaner on CPU "
        "than dynamo's here (default: legacy)",
    )
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="float16 compute, for GPUs; input stays uint8 and logits float32 "
        f"(default: float32; parity tolerance {FP16_TOLERANCE:g} instead of {FP32_TOLERANCE:g})",
    )
    parser.add_argument(
        "--taxonomy",
        type=Path,
        default=None,
        metavar="PATH",
        help="taxonomy whose classes, in file order, are the outputs "
        "(default: the packaged Mercedes-Benz taxonomy, service/core/data/taxonomy.yaml)",
    )
    parser.add_argument(
        "--report", type=Path, metavar="PATH", help="also write the JSON report to this file"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        help=f"max |logit difference| allowed (default: {FP32_TOLERANCE:g}, "
        f"{FP16_TOLERANCE:g} with --fp16)",
    )
    parser.add_argument(
        "--no-parity",
        dest="parity",
        action="store_false",
        help="skip the torch vs onnxruntime comparison (default: compare)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seed is not None and not args.demo:
        parser.error("--seed applies to --demo weights only")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        report = export_model(
            args.out,
            arch=args.arch,
            checkpoint=args.checkpoint,
            seed=(args.seed or 0) if args.demo else None,
            input_size=args.input_size,
            arch_kwargs=args.arch_kwargs,
            name=args.name,
            version=args.version,
            opset=args.opset,
            exporter=args.exporter,
            fp16=args.fp16,
            taxonomy_path=args.taxonomy,
            parity=args.parity,
            tolerance=args.tolerance,
        )
    except ExportError as exc:
        print(f"recognize export: error: {exc}", file=sys.stderr)
        return 1
    print(report.to_json())
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report.to_json() + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
