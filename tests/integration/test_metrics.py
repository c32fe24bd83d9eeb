"""Metrics of the real service, scraped by a real Prometheus (section 1), and the Grafana
dashboard's queries run against it (section 2).

The session's service (`recognize serve`, conftest.py) exports our metrics and Ray Serve's on
its Ray node's metrics port; a Prometheus from .tools/bin scrapes that port every second. The
test waits until the counters are settled (Ray reports every few seconds), takes a baseline
from Prometheus, sends known traffic, and checks that every counter and histogram moved by
exactly what the responses say.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest import photos as f
from service.metrics import METRICS, STAGES
from tests.integration.conftest import (
    CLUSTER_LAYOUT,
    RunningService,
    free_port,
    start_service,
    stop_service,
)
from tests.integration.test_api import EU_C_ESTATE, NA_GLE, NOT_MERCEDES, UNKNOWN_CODE, post
from tests.promtools import (
    DCGM_METRICS,
    PROMETHEUS,
    PROMTOOL,
    PrometheusServer,
    dashboard_targets,
    grafana_to_promql,
    metric_names,
    require,
)

pytestmark = pytest.mark.integration

REPORT_INTERVAL_S = 10  # Ray's metrics_report_interval_ms: replicas report this often
RAY_GLOBAL_LABEL = re.compile(r'\b[A-Z]\w*="[^"]*",?')  # NodeAddress, SessionName, WorkerId, ...


def exposition(service: RunningService) -> str:
    assert service.metrics_port is not None
    response = httpx.get(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def counter_lines(text: str) -> list[str]:
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith("ray_recognize_") and re.match(r"^\w+_(total|count)\{", line)
    )


def settle(service: RunningService) -> str:
    """The exposition once our counters have not moved for longer than Ray's report interval:
    nothing recorded before is still on its way."""
    deadline = time.monotonic() + 120
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        text = exposition(service)
        lines = counter_lines(text)
        if lines != last:
            last, since = lines, time.monotonic()
        elif time.monotonic() - since > REPORT_INTERVAL_S + 2:
            return text
        time.sleep(1)
    pytest.fail("the service's counters did not settle within 120 s")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The cluster's layout (what Prometheus scrapes in production): proxy, Ingress, Classifier."""
    running = start_service(
        {
            **CLUSTER_LAYOUT,
            "RECOGNIZE_MAX_BATCH_SIZE": "8",
            "RECOGNIZE_BATCH_WAIT_TIMEOUT_S": "0.05",
        },
        tmp_path_factory.mktemp("metrics") / "serve.log",
    )
    yield running
    stop_service(running.process)


@pytest.fixture(scope="module")
def prometheus(
    service: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    binary = require(PROMETHEUS)
    workdir = tmp_path_factory.mktemp("prometheus")
    target = f"127.0.0.1:{service.metrics_port}"
    with PrometheusServer(binary, [target], workdir, free_port()) as server:
        server.wait_until_up()
        yield server


class Traffic:
    """What was sent and what the service answered."""

    def __init__(self) -> None:
        self.recognized: list[dict[str, Any]] = []  # bodies of the 200 answers
        self.statuses: Counter[int] = Counter()  # POST /recognize answers by status
        self.errors: Counter[str] = Counter()  # error codes of every error answer
        self.vin_decodes: Counter[tuple[str, str]] = Counter()
        self.healthz = 0

    def record(self, response: httpx.Response, decoded_vin: tuple[str, str] | None = None) -> None:
        body = response.json()
        if response.request.url.path == "/recognize":
            self.statuses[response.status_code] += 1
        if response.status_code == 200 and "verdict" in body:
            self.recognized.append(body)
            vin = body["vin"]
            result = "parent" if vin["expected_parent"] else vin["reasons"][0]
            self.vin_decodes[(vin["layout"], result)] += 1
        elif response.status_code >= 400:
            self.errors[body["error"]["code"]] += 1
            if decoded_vin is not None:  # decoded before the request failed on its photo
                self.vin_decodes[decoded_vin] += 1


def send_traffic(service: RunningService) -> Traffic:
    traffic = Traffic()
    with service.client() as client:
        for i, vin in enumerate([EU_C_ESTATE, EU_C_ESTATE, EU_C_ESTATE, NA_GLE]):
            traffic.record(post(client, f.jpeg(300 + 40 * i, 450, seed=i), vin))
        for vin in (UNKNOWN_CODE, NOT_MERCEDES):  # always manual_review
            traffic.record(post(client, f.png(320, 480), vin))
        # concurrent requests share inference batches
        images = [f.jpeg(360, 540, seed=10 + i) for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for response in pool.map(lambda img: post(client, img, EU_C_ESTATE), images):
                traffic.record(response)
        # errors: two invalid VINs, a missing photo, a GIF, an upload over the limit, no route
        for vin in ("WDD2O52041F123456", "WDD2052041F12345"):
            traffic.record(post(client, f.jpeg(), vin), ("invalid", "invalid"))
        traffic.record(post(client, None, EU_C_ESTATE))
        gif = f.encode(f.photo_like(64, 64), "GIF")
        traffic.record(post(client, gif, EU_C_ESTATE), ("eu", "parent"))
        traffic.record(post(client, f.jpeg(64, 64) + b"\0" * (21 * 1024 * 1024), EU_C_ESTATE))
        traffic.record(client.get("/no-such-route"))
        for _ in range(2):
            assert client.get("/healthz").status_code == 200
            traffic.healthz += 1
    if service.api_key is not None:
        with httpx.Client(base_url=service.base_url, timeout=60) as anonymous:
            traffic.record(post(anonymous, f.jpeg(), EU_C_ESTATE))
    return traffic


def expected_deltas(traffic: Traffic) -> dict[str, float]:
    """How far each counter (a PromQL sum) must move for this traffic."""
    recognize = 'endpoint="/recognize"'
    sizes = [body["batch_size"] for body in traffic.recognized]
    n_ok = len(traffic.recognized)
    deltas = {
        f'sum(ray_recognize_requests_total{{{recognize}, status="{status}"}})': float(count)
        for status, count in traffic.statuses.items()
    }
    verdicts = Counter(body["verdict"] for body in traffic.recognized)
    for verdict in ("match", "mismatch", "manual_review"):
        served = f'{recognize}, status="200", verdict="{verdict}"'
        expr = f"sum(ray_recognize_requests_total{{{served}}})"
        deltas[expr] = float(verdicts[verdict])
    deltas['sum(ray_recognize_requests_total{endpoint="other", status="404"})'] = 1.0
    deltas['sum(ray_recognize_requests_total{endpoint="/healthz", verdict="none"})'] = float(
        traffic.healthz
    )
    for code, count in traffic.errors.items():
        deltas[f'sum(ray_recognize_errors_total{{code="{code}"}})'] = float(count)
    deltas["sum(ray_recognize_errors_total)"] = float(sum(traffic.errors.values()))
    n_recognize = float(sum(traffic.statuses.values()))
    deltas[f"sum(ray_recognize_request_duration_seconds_count{{{recognize}}})"] = n_recognize
    deltas[f'sum(ray_recognize_request_duration_seconds_bucket{{{recognize}, le="+Inf"}})'] = (
        n_recognize
    )
    for stage in STAGES:
        deltas[f'sum(ray_recognize_stage_duration_seconds_count{{stage="{stage}"}})'] = n_ok
    # One observation per batch: a batch of k answered k requests, each saying batch_size k.
    deltas["sum(ray_recognize_inference_batch_size_count)"] = round(sum(1 / s for s in sizes))
    deltas['sum(ray_recognize_inference_batch_size_bucket{le="1.5"})'] = float(sizes.count(1))
    # exact although Ray rebuilds _sum from bucket midpoints: see BATCH_SIZE_BUCKETS
    deltas["sum(ray_recognize_inference_batch_size_sum)"] = float(n_ok)
    for (layout, result), count in traffic.vin_decodes.items():
        expr = f'sum(ray_recognize_vin_decodes_total{{layout="{layout}", result="{result}"}})'
        deltas[expr] = float(count)
    # The vehicle gate checked every recognised photo (it is on by default).
    gate = Counter(
        "vehicle" if body["vehicle"]["present"] else "no_vehicle" for body in traffic.recognized
    )
    for result, count in gate.items():
        expr = f'sum(ray_recognize_vehicle_checks_total{{result="{result}"}})'
        deltas[expr] = float(count)
    deltas["sum(ray_recognize_vehicle_checks_total)"] = float(n_ok)
    return deltas


@pytest.fixture(scope="module")
def traffic_seen(
    service: RunningService, prometheus: PrometheusServer
) -> tuple[Traffic, dict[str, float], dict[str, float]]:
    """Traffic sent after a settled baseline; (traffic, expected deltas, observed deltas)."""
    raw = settle(service)
    raw_total = sum(
        sample.value
        for family in text_string_to_metric_families(raw)
        for sample in family.samples
        if sample.name == "ray_recognize_request_duration_seconds_count"
    )
    # Prometheus has scraped the settled state once its sum equals the exporter's.
    deadline = time.monotonic() + 30
    query = "sum(ray_recognize_request_duration_seconds_count)"
    while prometheus.value(query) != raw_total:
        assert time.monotonic() < deadline, (prometheus.value(query), raw_total)
        time.sleep(0.5)

    before = time.time()
    traffic = send_traffic(service)
    expected = expected_deltas(traffic)
    # Which queries to check depends on the answers; their baselines are read afterwards, at
    # the time before the first request (Prometheus keeps the samples it scraped then).
    baseline = {expr: prometheus.value(expr, at=before) for expr in expected}
    return traffic, expected, baseline


def test_traffic_is_what_the_test_thinks(
    traffic_seen: tuple[Traffic, dict[str, float], dict[str, float]],
) -> None:
    traffic, _, _ = traffic_seen
    assert len(traffic.recognized) == 14
    assert traffic.statuses[422] == 3 and traffic.statuses[415] == 1 and traffic.statuses[413] == 1
    assert max(body["batch_size"] for body in traffic.recognized) > 1, "no request was batched"
    assert {"invalid_vin", "invalid_request", "payload_too_large", "not_found"} <= set(
        traffic.errors
    )


def test_counters_and_histograms_moved_by_the_traffic(
    prometheus: PrometheusServer,
    traffic_seen: tuple[Traffic, dict[str, float], dict[str, float]],
) -> None:
    _, expected, baseline = traffic_seen
    deadline = time.monotonic() + 3 * REPORT_INTERVAL_S + 30
    while True:
        moved = {expr: prometheus.value(expr) - baseline[expr] for expr in expected}
        if moved == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    wrong = {expr: (moved[expr], want) for expr, want in expected.items() if moved[expr] != want}
    assert not wrong, "(moved, expected) per query: " + repr(wrong)


def test_gauges_and_ray_serve_metrics_on_the_same_target(
    prometheus: PrometheusServer,
    traffic_seen: tuple[Traffic, dict[str, float], dict[str, float]],
) -> None:
    assert len(prometheus.targets()) == 1  # one scrape target for the node
    ready = prometheus.query('ray_recognize_model_ready{deployment="Classifier"}')
    assert [float(s["value"][1]) for s in ready] == [1.0]
    (info,) = prometheus.query("ray_recognize_model_info == 1")
    labels = info["metric"]
    assert (labels["arch"], labels["input_size"]) == ("convnext_tiny", "224")
    assert labels["version"] and labels["application"] == "recognize"
    assert prometheus.value('sum(ray_recognize_batch_queue_requests{deployment="Classifier"})') == 0
    for deployment in ("Ingress", "Classifier"):
        healthy = f'sum(ray_serve_deployment_replica_healthy{{deployment="{deployment}"}})'
        assert prometheus.value(healthy) == 1.0
    assert prometheus.value('sum(ray_serve_num_http_requests_total{application="recognize"})') > 0


def listening_addresses(port: int) -> list[str]:
    """Local addresses with a TCP socket listening on ``port`` (Linux: /proc/net/tcp*)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:  # IPv4, little-endian
                    found.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
                else:
                    found.append(f"ipv6:{address}")
    return found


def test_metrics_port_listens_on_loopback_only(service: RunningService) -> None:
    assert service.metrics_port is not None
    assert listening_addresses(service.metrics_port) == ["127.0.0.1"]


def test_promtool_check_metrics(
    service: RunningService, traffic_seen: tuple[Traffic, dict[str, float], dict[str, float]]
) -> None:
    """Our metric families are lint-clean; the whole exposition's only findings are Ray's own
    (its metric names, and the CamelCase labels it puts on every metric)."""
    promtool = require(PROMTOOL)
    text = exposition(service)
    samples = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    assert {series for spec in METRICS for series in spec.exported_series} <= samples

    full = subprocess.run(
        [str(promtool), "check", "metrics"], input=text, capture_output=True, text=True
    )
    findings = (full.stdout + full.stderr).splitlines()
    for line in findings:
        name, _, problem = line.partition(" ")
        if name.startswith("ray_recognize_"):
            assert "camelCase" in problem, line  # Ray's global labels, on every Ray metric

    # Without Ray's global labels, our part of the exposition is clean.
    own = "\n".join(
        RAY_GLOBAL_LABEL.sub("", line).replace(",}", "}")
        for line in text.splitlines()
        if re.match(r"^(# (HELP|TYPE) )?ray_recognize_", line)
    )
    clean = subprocess.run(
        [str(promtool), "check", "metrics"], input=own + "\n", capture_output=True, text=True
    )
    assert clean.returncode == 0 and not (clean.stdout + clean.stderr).strip(), (
        clean.stdout + clean.stderr
    )


def test_dashboard_queries_run_against_prometheus(
    service: RunningService,
    prometheus: PrometheusServer,
    traffic_seen: tuple[Traffic, dict[str, float], dict[str, float]],
) -> None:
    """Every dashboard query names metrics the service exports (or DCGM's), runs without
    error, and returns data, except where no data is the right answer here (no GPU exporter,
    no 5xx)."""
    exported = {
        sample.name
        for family in text_string_to_metric_families(exposition(service))
        for sample in family.samples
    }
    empty_is_right = ("DCGM_", 'status=~"5.."')
    for title, expr in dashboard_targets():
        promql = grafana_to_promql(expr)
        unknown = metric_names(promql) - exported - DCGM_METRICS
        assert not unknown, (title, unknown)
        result = prometheus.query(promql)
        if any(marker in expr for marker in empty_is_right):
            continue
        # A counter first seen in the last scrape has one sample, too few for a rate yet.
        deadline = time.monotonic() + 15
        while not result and time.monotonic() < deadline:
            time.sleep(1)
            result = prometheus.query(promql)
        assert result, (title, promql)
