"""A new model rolled out on the running cluster under load, as the chart rolls one out in place.

The chart renders a new model as a new ``model_path`` in the Classifier's ``user_config`` of
serveConfigV2 (``recognize config`` with the new RECOGNIZE_MODEL_PATH); KubeRay sends a changed
serveConfigV2 to the running cluster, as the test does. Serve then calls the running replica's
reconfigure(), which loads the new model beside the old one and swaps them
(service/inference/classifier.py). Target: no answer other than 200, each naming the model
that computed it, one switch from the old version to the new one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.core.imaging import prepare_image
from service.inference.session import ClassifierConfig, build_session, run_batch
from service.settings import Settings
from tests.cluster.conftest import Cluster, settings
from tests.cluster.load import Load, counts
from tests.cluster.raycluster import RECOGNIZE, serve_config
from tests.paths import REPO

NEW_VERSION = "rollout-v2"
SWITCH_TIMEOUT_S = 180  # load and warm-up of the new model beside the serving one


@pytest.fixture(scope="module")
def new_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A second exported model: other weights (seed 1), another version (~30 s)."""
    out = tmp_path_factory.mktemp("rollout") / "convnext_tiny_224_v2.onnx"
    subprocess.run(
        [RECOGNIZE, "export", "--demo", "--seed", "1", "--version", NEW_VERSION, "--out", out],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )
    yield out


def confidence(model: Path, image: bytes) -> float:
    """The top class's probability this model gives the photo, computed here, without Ray."""
    session, metadata = build_session(ClassifierConfig(model_path=model))
    prepared = prepare_image(
        image,
        size=metadata.input_size,
        interpolation=metadata.interpolation,
        limits=Settings().limits(),
    )
    logits = run_batch(session, prepared.array[None])[0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    return float(probs.max() / probs.sum())


def test_a_new_model_rolls_out_under_load_without_an_error(
    cluster: Cluster, new_model: Path
) -> None:
    ray = cluster.ray
    old_config = serve_config(settings(cluster.model))
    new_config = serve_config(settings(new_model))
    # What the chart changes for a new model: the Classifier's user_config only.
    (old_app,), (new_app,) = old_config["applications"], new_config["applications"]
    assert old_app["args"] == new_app["args"]
    with cluster.service.client() as client:
        old_version = client.get("/v1/model").json()["version"]
    assert old_version != NEW_VERSION
    load = Load(cluster.service.base_url, cluster.service.headers, clients=3, seconds=240)
    expected = {
        old_version: confidence(cluster.model, load.image),
        NEW_VERSION: confidence(new_model, load.image),
    }
    assert abs(expected[old_version] - expected[NEW_VERSION]) > 1e-3, expected
    before = {
        name: [r["replica_id"] for r in ray.replicas(name)] for name in ("Ingress", "Classifier")
    }

    with load:
        time.sleep(5.0)
        deployed_at = time.monotonic()
        ray.deploy(new_config)
        # Until every client has had a few answers from the new model, then 3 s more.
        deadline = deployed_at + SWITCH_TIMEOUT_S
        while time.monotonic() < deadline:
            new = [a for a in load.answers if a.version == NEW_VERSION]
            if len({a.client for a in new}) == load.clients and len(new) >= 3 * load.clients:
                break
            time.sleep(0.5)
        time.sleep(3.0)

    answers = sorted(load.answers, key=lambda a: a.done)
    during = [a for a in answers if a.done >= deployed_at]
    old = [a for a in during if a.version == old_version]
    new = [a for a in during if a.version == NEW_VERSION]
    print(
        f"\nrollout under load: {counts(during)} after the deploy; last {old_version} answer "
        f"{max((a.done for a in old), default=deployed_at) - deployed_at:.1f} s after it, first "
        f"{NEW_VERSION} {min((a.done for a in new), default=float('nan')) - deployed_at:.1f} s; "
        f"slowest answer {max(a.latency_s for a in during):.2f} s"
    )
    assert new, f"no answer from {NEW_VERSION} within {SWITCH_TIMEOUT_S} s\n{ray.tail()}"
    assert counts(answers) == {"200": len(answers)}, counts(answers)
    # Each answer names the model that computed it: its confidence is that model's.
    for answer in answers:
        assert answer.confidence == pytest.approx(expected[answer.version], abs=1e-3), answer
    # One switch, never back: in the order the answers came, old ones, then only new ones.
    versions = [a.version for a in answers]
    switch = versions.index(NEW_VERSION)
    assert set(versions[:switch]) == {old_version}
    assert set(versions[switch:]) == {NEW_VERSION}, versions[switch:]
    # Applied in place: no replica was restarted for it.
    after = {
        name: [r["replica_id"] for r in ray.replicas(name)] for name in ("Ingress", "Classifier")
    }
    assert after == before
    assert all(p.healthz == 200 and p.readyz == 200 for p in load.probes), load.probes
    with cluster.service.client() as client:
        assert client.get("/v1/model").json()["version"] == NEW_VERSION
