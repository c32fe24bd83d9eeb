"""The HTTP contract on the cluster layout across nodes: the Ingress on the head, the
Classifier on a GPU worker, every request through the head's Serve proxy.

The contract checks are the single-node ones (tests/integration/test_api.py), imported so they
run here against the cluster; the tests of this file show where the answers come from.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from loadtest import photos as f
from loadtest._stats import process_argv
from tests.cluster.conftest import Cluster
from tests.cluster.netns import namespace_pids
from tests.cluster.raycluster import METRICS_PORT, METRICS_REPORT_INTERVAL_MS, SERVE_PORT
from tests.integration.test_api import (  # noqa: F401 - collected here, run on the cluster
    EU_C_ESTATE,
    post,
    test_api_key_is_required_and_names_the_tenant,
    test_client_request_id_is_kept,
    test_concurrent_requests_batch_and_match_sequential_results,
    test_default_top_k_is_three,
    test_error_contract,
    test_error_messages_name_the_problem,
    test_healthz_and_readyz,
    test_model_metadata_is_served,
    test_north_american_vin,
    test_openapi_document,
    test_recognize_contract,
    test_unknown_parent_goes_to_manual_review,
    test_unknown_route_and_method_are_json,
)


def test_ingress_on_the_head_classifier_on_the_worker(cluster: Cluster) -> None:
    head, worker = cluster.ray.nodes["head"], cluster.ray.nodes["w1"]
    (ingress,) = cluster.ray.replicas("Ingress")
    (classifier,) = cluster.ray.replicas("Classifier")
    assert ingress["node_ip"] == head.address, ingress
    assert classifier["node_ip"] == worker.address, classifier
    assert classifier["node_id"] != ingress["node_id"]
    # The replica's process lives in the worker's namespace (its own network stack).
    assert classifier["pid"] in namespace_pids(worker.namespace)
    assert ingress["pid"] in namespace_pids(head.namespace)


def test_clients_come_in_through_haproxy_on_the_head(cluster: Cluster) -> None:
    """The chart's default proxy (ray.httpProxy: haproxy): HAProxy runs in the head's
    namespace, in front of the Ingress replica, and the service answers through it."""
    head = cluster.ray.nodes["head"]
    binaries = [
        Path(argv[0]).name
        for pid in namespace_pids(head.namespace)
        if (argv := process_argv(pid)) is not None
    ]
    assert "haproxy" in binaries, binaries
    # Behind the chart's Service a request may reach any node's proxy: the worker's HAProxy
    # (no Ingress replica there) forwards to the head's Ingress; /-/healthz is what KubeRay's
    # probes ask the proxy of each pod.
    for node in (head, cluster.ray.nodes["w1"]):
        base = f"http://{node.address}:{SERVE_PORT}"
        assert httpx.get(f"{base}/-/healthz", timeout=10).status_code == 200, node.name
        assert httpx.get(f"{base}/readyz", timeout=10).json() == {"status": "ready"}, node.name


# How often a node's metrics reach its export (tests/cluster/raycluster.py; Ray's default 10 s).
EXPORT_INTERVAL_S = METRICS_REPORT_INTERVAL_MS / 1000


def _images_classified_on(address: str) -> float:
    """Images the node's Classifier replicas put through the model, from the node's own metrics
    export (the sum of the batch-size histogram: one per image)."""
    text = httpx.get(f"http://{address}:{METRICS_PORT}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ray_recognize_inference_batch_size_sum{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _settled_images_on(address: str, at_least: float = 0.0) -> float:
    """The count once it has reached ``at_least`` and stayed put for one export interval."""
    deadline = time.monotonic() + 90
    last = _images_classified_on(address)
    while True:
        time.sleep(EXPORT_INTERVAL_S + 1)
        now = _images_classified_on(address)
        if now == last and now >= at_least:
            return now
        assert time.monotonic() < deadline, (address, last, now, at_least)
        last = now


def test_batches_and_their_timings_come_from_the_worker_node(cluster: Cluster) -> None:
    """Concurrent requests to the head come back batched (batch_size > 1) with queue and
    inference times, and exactly that many images were run on the worker node, none on the
    head: the answers' batch sizes and timings are the remote Classifier's."""
    head, worker = cluster.ray.nodes["head"], cluster.ray.nodes["w1"]
    before = _settled_images_on(worker.address)
    images = [f.jpeg(320 + 8 * i, 480, seed=40 + i) for i in range(16)]
    with (
        ThreadPoolExecutor(max_workers=16) as pool,
        cluster.service.client(timeout=60) as client,
    ):
        bodies = list(pool.map(lambda image: post(client, image, EU_C_ESTATE).json(), images))
    assert all("batch_size" in b for b in bodies), bodies
    assert max(b["batch_size"] for b in bodies) > 1, [b["batch_size"] for b in bodies]
    for body in bodies:
        latency = body["latency_ms"]
        assert latency["inference"] > 0 and latency["total"] > latency["inference"]
    after = _settled_images_on(worker.address, at_least=before + len(images))
    assert after - before == len(images)
    assert _images_classified_on(head.address) == 0
    # The worker runs a Serve proxy too (proxy_location EveryNode, as the chart renders it).
    assert httpx.get(f"http://{worker.address}:8000/readyz").json() == {"status": "ready"}
