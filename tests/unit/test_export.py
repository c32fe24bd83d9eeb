"""service/modeltools/export.py: small ConvNeXt and Swin models exported for real, then read
back with onnx and onnxruntime the way the service reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")  # model tooling extra
timm = pytest.importorskip("timm")

from service.core.errors import ModelContractError  # noqa: E402
from service.core.modelfile import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, parse_metadata  # noqa: E402
from service.core.taxonomy import default_taxonomy  # noqa: E402
from service.modeltools import export  # noqa: E402
from service.modeltools.export import ExportError, ParityError, build_model, export_model, main  # noqa: E402
from tests.paths import REPO  # noqa: E402

CONVNEXT = {"arch": "convnext_atto", "input_size": 64, "arch_kwargs": {}}
# Swin-V2 at its native 256 px, one block per stage: exports in a fraction of a second.
TINY_SWIN = {"depths": (1, 1, 1, 1), "embed_dim": 24, "num_heads": (1, 1, 1, 1)}
SWIN = {"arch": "swinv2_tiny_window8_256", "input_size": 256, "arch_kwargs": TINY_SWIN}
NUM_CLASSES = len(default_taxonomy().classes)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def infer(path: Path, images: np.ndarray) -> np.ndarray:
    return session(path).run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def random_images(n: int, size: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def save_state_dict(path: Path, spec: dict, *, seed: int = 0, wrap: str | None = None) -> Path:
    model = build_model(spec["arch"], NUM_CLASSES, seed=seed, arch_kwargs=spec["arch_kwargs"])
    state = model.state_dict()
    torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, Path, dict]]:
    """One seeded export per family: {family: (spec, path, report)}."""
    folder = tmp_path_factory.mktemp("exported")
    result = {}
    for family, spec in (("convnext", CONVNEXT), ("swin", SWIN)):
        path = folder / f"{family}.onnx"
        report = export_model(path, seed=0, **spec)
        result[family] = (spec, path, json.loads(report.to_json()))
    return result


@pytest.fixture(params=["convnext", "swin"])
def family(request: pytest.FixtureRequest, exported: dict) -> tuple[dict, Path, dict]:
    return exported[request.param]


def test_model_passes_checker_and_has_the_io_contract(family: tuple[dict, Path, dict]) -> None:
    spec, path, _ = family
    onnx.checker.check_model(str(path))
    model = onnx.load(str(path))
    assert all(o.version >= 17 for o in model.opset_import if o.domain in ("", "ai.onnx"))

    (inp,), (out,) = session(path).get_inputs(), session(path).get_outputs()
    size = spec["input_size"]
    assert (inp.name, inp.type, inp.shape) == (
        INPUT_NAME,
        "tensor(uint8)",
        ["batch", size, size, 3],
    )
    assert (out.name, out.type, out.shape) == (OUTPUT_NAME, "tensor(float)", ["batch", NUM_CLASSES])


def test_batch_axis_is_dynamic_and_rows_are_independent(family: tuple[dict, Path, dict]) -> None:
    spec, path, _ = family
    images = random_images(3, spec["input_size"])
    one = infer(path, images[:1])
    three = infer(path, images)
    assert one.shape == (1, NUM_CLASSES) and three.shape == (3, NUM_CLASSES)
    assert one.dtype == three.dtype == np.float32
    # The traced batch was 2: a batch size baked into a reshape would mix or drop rows here.
    np.testing.assert_allclose(three[:1], one, atol=1e-5)
    np.testing.assert_allclose(three[2:], infer(path, images[2:]), atol=1e-5)


def test_graph_equals_timm_on_manually_normalised_input(family: tuple[dict, Path, dict]) -> None:
    spec, path, report = family
    assert report["max_abs_diff"] < 1e-3
    kwargs = dict(spec["arch_kwargs"])
    torch.manual_seed(0)
    model = timm.create_model(spec["arch"], num_classes=NUM_CLASSES, **kwargs).eval()
    cfg = model.pretrained_cfg
    images = random_images(2, spec["input_size"], seed=11)

    x = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 255.0
    x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(infer(path, images), expected, atol=1e-4, rtol=0)


def test_preprocessing_sees_the_pixels(family: tuple[dict, Path, dict]) -> None:
    spec, path, _ = family
    size = spec["input_size"]
    black = np.zeros((1, size, size, 3), np.uint8)
    white = np.full((1, size, size, 3), 255, np.uint8)
    red = black.copy()
    red[..., 0] = 255
    logits = [infer(path, image) for image in (black, white, red)]
    assert np.abs(logits[0] - logits[1]).max() > 1e-3
    assert np.abs(logits[0] - logits[2]).max() > 1e-3


def test_metadata_round_trips_and_matches_the_taxonomy(family: tuple[dict, Path, dict]) -> None:
    spec, path, report = family
    taxonomy = default_taxonomy()
    metadata = parse_metadata(session(path).get_modelmeta().custom_metadata_map)
    metadata.check_against(taxonomy)
    cfg = timm.get_pretrained_cfg(spec["arch"])
    assert metadata.arch == spec["arch"] == report["arch"]
    assert metadata.input_size == spec["input_size"] == report["input_size"]
    assert metadata.mean == pytest.approx(cfg.mean) and metadata.std == pytest.approx(cfg.std)
    assert metadata.interpolation == cfg.interpolation
    assert (metadata.name, metadata.version) == (path.stem, "demo-seed0")
    assert metadata.precision == "fp32"
    assert metadata.taxonomy_version == taxonomy.version
    assert [c.id for c in metadata.classes] == [c.id for c in taxonomy.classes]


def test_report_describes_the_file(exported: dict) -> None:
    _, path, report = exported["convnext"]
    assert report["path"] == str(path)
    assert (report["exporter"], report["opset"], report["num_classes"]) == ("legacy", 17, 64)
    assert report["file_size_mb"] == pytest.approx(path.stat().st_size / 1e6, abs=0.01)
    assert report["params"] == 3_395_064  # convnext_atto with a 64-class head
    assert report["export_seconds"] > 0 and report["parity_tolerance"] == 1e-3


def test_model_without_metadata_is_refused(exported: dict, tmp_path: Path) -> None:
    _, path, _ = exported["convnext"]
    model = onnx.load(str(path))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    custom = session(bare).get_modelmeta().custom_metadata_map
    assert METADATA_KEY not in custom
    with pytest.raises(ModelContractError, match="no 'recognize' metadata"):
        parse_metadata(custom, source=str(bare))


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_checkpoint_export_equals_seeded_export(
    exported: dict, tmp_path: Path, wrap: str | None
) -> None:
    _, seeded_path, _ = exported["convnext"]
    checkpoint = save_state_dict(tmp_path / "run42.pth", CONVNEXT, seed=0, wrap=wrap)
    out = tmp_path / "from_checkpoint.onnx"
    argv = [
        "--arch",
        "convnext_atto",
        "--input-size",
        "64",
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    images = random_images(2, 64)
    np.testing.assert_array_equal(infer(out, images), infer(seeded_path, images))
    assert parse_metadata(session(out).get_modelmeta().custom_metadata_map).version == "run42"


def test_checkpoint_with_another_seed_gives_other_logits(exported: dict, tmp_path: Path) -> None:
    _, seeded_path, _ = exported["convnext"]
    checkpoint = save_state_dict(tmp_path / "other.pth", CONVNEXT, seed=1)
    out = tmp_path / "other.onnx"
    export_model(out, checkpoint=checkpoint, **CONVNEXT)
    images = random_images(1, 64)
    assert np.abs(infer(out, images) - infer(seeded_path, images)).max() > 1e-3


def test_checkpoint_with_wrong_class_count_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "imagenet.pth"
    torch.save(timm.create_model("convnext_atto", num_classes=1000).state_dict(), checkpoint)
    out = tmp_path / "never.onnx"
    with pytest.raises(ExportError, match=r"1000-class head .*taxonomy has 64 classes"):
        export_model(out, checkpoint=checkpoint, **CONVNEXT)

    argv = ["--arch", "convnext_atto", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(argv) == 1
    assert "1000-class head (head.fc.weight (1000, 320))" in capsys.readouterr().err
    assert not out.exists()


def test_checkpoint_with_missing_and_unexpected_keys_names_them(tmp_path: Path) -> None:
    state = build_model("convnext_atto", NUM_CLASSES, seed=0).state_dict()
    del state["stem.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    checkpoint = tmp_path / "partial.pth"
    torch.save({"model": state}, checkpoint)
    with pytest.raises(ExportError, match=r"1 missing keys \['stem.0.weight'\].*1 unexpected keys"):
        export_model(tmp_path / "never.onnx", checkpoint=checkpoint, **CONVNEXT)


def test_checkpoint_for_another_arch_names_the_shapes(tmp_path: Path) -> None:
    checkpoint = save_state_dict(tmp_path / "femto.pth", {**CONVNEXT, "arch": "convnext_femto"})
    with pytest.raises(ExportError, match=r"tensors have other shapes: \['stem.0.weight"):
        export_model(tmp_path / "never.onnx", checkpoint=checkpoint, **CONVNEXT)


def test_failed_parity_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    with pytest.raises(ParityError, match="tolerance 0"):
        export_model(out, seed=0, tolerance=0.0, **CONVNEXT)
    assert list(tmp_path.iterdir()) == []


def test_fp16_keeps_uint8_in_and_float32_out(tmp_path: Path) -> None:
    out = tmp_path / "half.onnx"
    report = export_model(out, seed=0, fp16=True, **CONVNEXT)
    assert report.max_abs_diff is not None and report.max_abs_diff < 5e-2
    assert report.parity_tolerance == 5e-2
    model = onnx.load(str(out))
    weights = {
        onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        for t in model.graph.initializer
        if len(t.dims) > 1
    }
    assert weights == {np.dtype(np.float16)}
    logits = infer(out, random_images(2, 64))
    assert logits.dtype == np.float32 and logits.shape == (2, NUM_CLASSES)
    assert parse_metadata(session(out).get_modelmeta().custom_metadata_map).precision == "fp16"


def test_dynamo_exporter(exported: dict, tmp_path: Path) -> None:
    _, legacy_path, _ = exported["convnext"]
    out = tmp_path / "dynamo.onnx"
    report = export_model(out, seed=0, exporter="dynamo", **CONVNEXT)
    assert report.opset >= 18 and report.max_abs_diff < 1e-3
    assert not out.with_name("dynamo.onnx.data").exists()  # weights folded into the one file
    images = random_images(3, 64)
    np.testing.assert_allclose(infer(out, images), infer(legacy_path, images), atol=1e-4)
    assert session(out).get_inputs()[0].shape == ["batch", 64, 64, 3]


def test_swin_at_another_input_size_is_built_for_it(tmp_path: Path) -> None:
    out = tmp_path / "swin128.onnx"
    report = export_model(out, seed=0, **{**SWIN, "input_size": 128})
    assert report.arch_kwargs["img_size"] == 128 and report.input_size == 128
    assert infer(out, random_images(2, 128)).shape == (2, NUM_CLASSES)
    with pytest.raises(ExportError, match="contradicts img_size=96"):
        export_model(out, seed=0, **{**SWIN, "arch_kwargs": {**TINY_SWIN, "img_size": 96}})


def test_large_models_keep_weights_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "EXTERNAL_DATA_THRESHOLD_BYTES", 0)
    out = tmp_path / "big.onnx"
    report = export_model(out, seed=0, **CONVNEXT)
    data = tmp_path / "big.onnx.data"
    assert data.stat().st_size > out.stat().st_size
    assert report.file_size_mb == pytest.approx(
        (data.stat().st_size + out.stat().st_size) / 1e6, abs=0.01
    )
    onnx.checker.check_model(str(out))
    assert infer(out, random_images(1, 64)).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("resnet18", "not a ConvNeXt, Swin or EfficientNet"),
        ("convnext_nonexistent", "timm has no architecture"),
    ],
)
def test_unsupported_architectures_are_refused(tmp_path: Path, arch: str, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        export_model(tmp_path / "x.onnx", arch=arch, seed=0)


def test_efficientnet_exports_with_a_head_of_any_size(tmp_path: Path) -> None:
    """EfficientNet-Lite0 with the 10-class Fashion-MNIST test taxonomy (what `recognize
    train` exports): contract, metadata and parity hold for another head size."""
    taxonomy = REPO / "examples" / "fashion-mnist" / "taxonomy.yaml"
    report = export_model(
        tmp_path / "lite0.onnx", arch="tf_efficientnet_lite0", seed=0, input_size=64,
        taxonomy_path=taxonomy,
    )
    assert report.num_classes == 10 and report.max_abs_diff < export.FP32_TOLERANCE
    assert infer(tmp_path / "lite0.onnx", random_images(2, 64)).shape == (2, 10)


def test_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, report_path = tmp_path / "m.onnx", tmp_path / "reports" / "m.json"
    argv = [
        "--demo",
        "--seed",
        "3",
        "--arch",
        "convnext_atto",
        "--input-size",
        "64",
        "--out",
        str(out),
        "--report",
        str(report_path),
        "--name",
        "atto-test",
        "--no-parity",
    ]
    assert main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report == json.loads(capsys.readouterr().out)
    assert {
        "arch",
        "input_size",
        "exporter",
        "opset",
        "file_size_mb",
        "export_seconds",
        "max_abs_diff",
        "params",
        "path",
    } <= report.keys()
    assert (report["name"], report["version"], report["max_abs_diff"]) == (
        "atto-test",
        "demo-seed3",
        None,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--out", "x.onnx"],  # neither weights source
        ["--demo", "--checkpoint", "c.pth", "--out", "x.onnx"],
        ["--checkpoint", "c.pth", "--seed", "1", "--out", "x.onnx"],
        ["--demo"],  # no --out
        ["--demo", "--out", "x.onnx", "--arch-kwargs", "[1]"],
    ],
)
def test_cli_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_help_states_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in (
        "default: convnext_tiny",
        "default: 17",
        "default: legacy",
        "default: 0",
        "service/core/data/taxonomy.yaml",
        "native size",
    ):
        assert default in text
