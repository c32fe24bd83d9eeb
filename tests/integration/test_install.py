"""A non-editable install works away from the checkout, as the Docker image uses it.

The wheel is built from this checkout and installed into a fresh virtual environment; the
service's dependencies come from the test environment's site-packages through a ``.pth`` line
(no network, and the editable install of the checkout is not on that path: a ``.pth`` file
inside an added directory is not processed). Everything then runs from a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import site
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import DEMO_GATE
from tests.integration.conftest import free_port
from tests.paths import DEMO_MODEL_PATH, REPO
from tests.photos import photo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel of this checkout installed; yields its bin directory."""
    root = tmp_path_factory.mktemp("install")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(root / "dist"), str(REPO)],
        check=True, cwd=root,
    )  # fmt: skip
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "recognize-test-deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    wheel = next((root / "dist").glob("recognize-*.whl"))
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    yield venv / "bin"


def run(bin_dir: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [str(bin_dir / "recognize"), *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip


def test_the_wheel_holds_the_service_and_its_data_only(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    names = zipfile.ZipFile(next(tmp_path.glob("recognize-*.whl"))).namelist()
    top_level = {n.split("/")[0] for n in names if not n.startswith("recognize-")}
    assert top_level == {"service"}, "no generic import names such as models or loadtest"
    assert "service/core/data/taxonomy.yaml" in names
    assert "service/core/data/vin_rules.yaml" in names


def test_vin_decoding_from_anywhere(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import service; print(service.__file__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(installed.parent)), f"imported {where}, not the installed one"
    result = run(installed, "vin", "WDD2052041F123456", "4JGDA5HB7GA123456", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    parents = [json.loads(line)["expected_parent"] for line in result.stdout.splitlines()]
    assert parents == ["C-Class", "GLE-Class"]


def test_bench_says_where_to_get_it(installed: Path, tmp_path: Path) -> None:
    result = run(installed, "bench", cwd=tmp_path)
    assert result.returncode == 2
    assert "source checkout" in result.stderr


def test_serve_with_a_model_path_from_anywhere(installed: Path, tmp_path: Path) -> None:
    if not DEMO_MODEL_PATH.is_file():
        pytest.fail(f"demo model {DEMO_MODEL_PATH} missing: run `make model` (make test does)")
    port = free_port()
    env = {
        **os.environ,
        "RECOGNIZE_MODEL_PATH": str(DEMO_MODEL_PATH),
        "RECOGNIZE_GATE_MODEL_PATH": str(REPO / DEMO_GATE),
        "RECOGNIZE_AUTH_DISABLED": "true",
        "RECOGNIZE_PORT": str(port),
        "RECOGNIZE_METRICS_PORT": str(free_port()),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(installed / "recognize"), "serve"], cwd=tmp_path, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"not ready in time:\n{log.read_text()[-3000:]}")
        car = photo("opencv/licenseplate_motion.jpg").read_bytes()
        answer = httpx.post(
            base + "/recognize",
            files={"image": ("car.jpg", car, "image/jpeg")},
            data={"vin": "WDD2052041F123456"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["vin"]["expected_parent"] == "C-Class"
        assert answer.json()["vehicle"]["present"] is True  # the gate file found by its path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
