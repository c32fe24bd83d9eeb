"""One real multi-node Ray cluster for the tests in tests/cluster, in network namespaces.

Head (GCS, dashboard, Serve controller, HTTP proxy, Ingress) and one GPU worker (Classifier),
each with its own address, the application deployed from `recognize config` through the
head's REST API. Built once per session (~1-2 min on 2 cores) and torn down afterwards, also
when a test or the set-up fails; leftovers of an earlier, killed run are removed first.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.core.auth import create_key
from tests.cluster import netns
from tests.cluster.raycluster import RayCluster, node_environment, serve_config
from tests.integration.conftest import TEST_TENANT, RunningService
from tests.paths import DEMO_MODEL_PATH

START_TIMEOUT_S = 300
# A short deadline keeps the fault tests short; the chart's is 30 s (limits.requestTimeoutS).
DEADLINE_S = 10.0


CLUSTER_OPTIONS = frozenset({"RECOGNIZE_GATHER_IN_INGRESS"})


def settings(model: Path) -> dict[str, str]:
    """The RECOGNIZE_* settings of the test's application: the chart's layout and placement
    (two deployments behind the proxy, the Classifier asking for one GPU, host 0.0.0.0), run
    on the CPU (the one thing here that cannot be as in production)."""
    return {
        "RECOGNIZE_HOST": "0.0.0.0",
        "RECOGNIZE_PORT": "8000",
        "RECOGNIZE_MODEL_PATH": str(model.absolute()),
        "RECOGNIZE_CLASSIFIER_NUM_GPUS": "1",  # the chart's classifier.numGpus default
        "RECOGNIZE_CONCURRENT_BATCHES": "1",  # the chart's classifier.concurrentBatches
        # Long enough that concurrent test requests share a batch on a busy 2-core box.
        "RECOGNIZE_BATCH_WAIT_TIMEOUT_S": "0.05",
        # The CPU has no first-run cost per batch shape to hide (CUDA has; the chart warms
        # every size): two shapes make start-up and a new model's swap shorter on 2 cores.
        "RECOGNIZE_WARMUP_BATCH_SIZES": "[1, 8]",
        "RECOGNIZE_REQUEST_TIMEOUT_S": str(DEADLINE_S),
        # Options not on by default that the whole suite can be run with, e.g.
        # RECOGNIZE_GATHER_IN_INGRESS=true pytest tests/cluster (nothing else of ours reaches
        # the cluster: its nodes get the chart's environment only).
        **{k: v for k, v in os.environ.items() if k in CLUSTER_OPTIONS},
    }


@dataclass
class Cluster:
    ray: RayCluster
    service: RunningService  # base_url (the head's proxy) and the test tenant's key
    model: Path

    def wait_ready(self, timeout_s: float) -> float:
        """Seconds until /readyz says ready through the head's proxy."""
        started = time.monotonic()
        with httpx.Client(base_url=self.service.base_url, timeout=5.0) as client:
            while time.monotonic() - started < timeout_s:
                try:
                    if client.get("/readyz").status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        raise TimeoutError(f"not ready after {timeout_s:.0f} s\n{self.ray.tail()}")


def keep_logs(lan: netns.Lan, into: Path) -> None:
    """The nodes' own logs and Serve's logs, copied out before the cluster's folder goes."""
    for log in lan.folder.glob("*.log"):
        shutil.copy(log, into / log.name)
    for serve_logs in lan.folder.glob("*/session_latest/logs/serve"):
        shutil.copytree(serve_logs, into / serve_logs.parts[-4], dirs_exist_ok=True)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    problem = netns.missing_requirements()
    if problem:
        pytest.fail(f"the multi-node tests need network namespaces: {problem}")
    if not DEMO_MODEL_PATH.is_file():
        pytest.fail(f"demo model {DEMO_MODEL_PATH} missing: run `make model` (make test does)")
    removed = netns.clean_leftovers()
    if removed:
        print(f"\nremoved leftovers of an earlier run: {removed}")
    lan = netns.Lan()
    try:
        api_key, entry = create_key(TEST_TENANT)
        env = node_environment(lan.folder, json.dumps([entry.model_dump()]))
        ray = RayCluster(lan, env)
        started = time.monotonic()
        ray.start_head()
        # Deployed before the worker joins, as on KubeRay where the GPU pod comes later: the
        # Ingress can only go to the head, the Classifier waits for a GPU.
        ray.deploy(serve_config(settings(DEMO_MODEL_PATH)))
        ray.start_worker("w1")
        ray.wait_until_running(START_TIMEOUT_S)
        service = RunningService(ray.base_url, ray.head.process, ray.log("head"), 0.0, api_key)  # type: ignore[union-attr, arg-type]
        running = Cluster(ray, service, DEMO_MODEL_PATH)
        running.wait_ready(60)
        service.cold_start_s = time.monotonic() - started
        print(f"\ncluster up and serving after {service.cold_start_s:.0f} s")
        yield running
    finally:
        logs = tmp_path_factory.mktemp("cluster-logs")
        keep_logs(lan, logs)
        print(f"\ncluster logs kept in {logs}")
        lan.close()


@pytest.fixture()
def client(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.service.client() as c:
        yield c


@pytest.fixture()
def service(cluster: Cluster) -> RunningService:
    return cluster.service
