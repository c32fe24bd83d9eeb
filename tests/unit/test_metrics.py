"""The metrics module without Ray: names and buckets follow Prometheus conventions, the batch
buckets keep Ray's midpoint-rebuilt _sum exact, and the recorders map inputs to fixed labels."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service import metrics as m
from service.api.schemas import Latency
from service.core.vin import decode_vin


def test_names_help_and_label_sets_follow_prometheus_conventions() -> None:
    names = [spec.name for spec in m.METRICS]
    assert len(names) == len(set(names))
    for spec in m.METRICS:
        assert re.fullmatch(r"recognize_[a-z_]+", spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        if "duration" in spec.name:
            assert spec.name.endswith("_seconds") and spec.kind == "histogram", spec.name
        if spec.kind == "histogram":
            assert list(spec.boundaries) == sorted(set(spec.boundaries)), spec.name
        else:
            assert not spec.boundaries, spec.name
        assert spec.description.endswith("."), spec.name
        # Serve adds these itself and refuses them as user labels.
        assert not {"deployment", "replica", "application"} & set(spec.tag_keys), spec.name
        assert spec.exported == "ray_" + spec.name


def test_latency_buckets_span_5_ms_to_10_s_with_the_slo_as_a_bound() -> None:
    assert m.LATENCY_BUCKETS_S[0] == 0.005 and m.LATENCY_BUCKETS_S[-1] == 10.0
    assert 2.0 in m.LATENCY_BUCKETS_S  # the p99 SLO of deploy/prometheus/alerts.yaml
    assert m.STAGE_BUCKETS_S[-len(m.LATENCY_BUCKETS_S) :] == m.LATENCY_BUCKETS_S


def midpoints(bounds: tuple[float, ...]) -> list[float]:
    """How Ray rebuilds observations from bucket counts (open_telemetry_metric_recorder)."""
    return [(0.0 if i == 0 else bounds[i - 1]) / 2 + b / 2 for i, b in enumerate(bounds)]


def test_batch_size_buckets_make_the_rebuilt_sum_exact_up_to_8() -> None:
    bounds = m.BATCH_SIZE_BUCKETS
    for size in range(1, 9):
        bucket = next(i for i, bound in enumerate(bounds) if size <= bound)
        assert midpoints(bounds)[bucket] == size
    assert bounds[-1] >= 256  # ClassifierConfig.max_batch_size's limit


class Recorder:
    """Stands in for a Ray metric: keeps what was recorded."""

    def __init__(self) -> None:
        self.records: list[tuple[float, dict[str, str]]] = []

    def _add(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.records.append((value, dict(tags or {})))

    inc = observe = set = _add


@pytest.fixture()
def ingress() -> Any:
    metrics = m.IngressMetrics()
    for name in ("_requests", "_duration", "_stages", "_errors", "_vins"):
        setattr(metrics, name, Recorder())
    return metrics


def test_request_counts_and_times_every_answer_and_errors_only_errors(ingress: Any) -> None:
    ingress.request(
        endpoint="/recognize", status=200, verdict="match", error_code=None, duration_s=0.2
    )
    ingress.request(
        endpoint="other", status=404, verdict=None, error_code="not_found", duration_s=0.001
    )
    assert ingress._requests.records == [
        (1.0, {"endpoint": "/recognize", "status": "200", "verdict": "match"}),
        (1.0, {"endpoint": "other", "status": "404", "verdict": "none"}),
    ]
    assert [tags for _, tags in ingress._duration.records] == [
        {"endpoint": "/recognize"},
        {"endpoint": "other"},
    ]
    assert ingress._errors.records == [(1.0, {"code": "not_found", "status": "404"})]


def test_stages_observe_every_stage_in_seconds(ingress: Any) -> None:
    ingress.stages(Latency(decode=10, preprocess=2, queue=0.5, inference=50, total=63))
    assert ingress._stages.records == [
        (0.01, {"stage": "decode"}),
        (0.002, {"stage": "preprocess"}),
        (0.0005, {"stage": "queue"}),
        (0.05, {"stage": "inference"}),
    ]


@pytest.mark.parametrize(
    ("vin", "labels"),
    [
        ("WDD2052041F123456", {"layout": "eu", "result": "parent"}),
        ("WDD9992041F123456", {"layout": "eu", "result": "unknown_model_code"}),
        ("WDB1240301A123456", {"layout": "eu", "result": "generation_not_supported"}),
        ("VF1RFB00X56123456", {"layout": "eu", "result": "vin_not_mercedes"}),
        (None, {"layout": "invalid", "result": "invalid"}),
    ],
)
def test_vin_decodes_map_to_layout_and_result(
    ingress: Any, vin: str | None, labels: dict[str, str]
) -> None:
    ingress.vin_decode(decode_vin(vin) if vin else None)
    assert ingress._vins.records == [(1.0, labels)]


def test_classifier_gauges_are_set_again_on_refresh() -> None:
    metrics = m.ClassifierMetrics()
    metrics._queue, metrics._ready_gauge, metrics._model_info = Recorder(), Recorder(), Recorder()
    metrics.model(arch="convnext_tiny", version="v1", input_size=224)
    metrics.ready(True)
    metrics.waiting(3)
    metrics.model(arch="convnext_tiny", version="v2", input_size=224)
    assert metrics._model_info.records[-2:] == [
        (0, {"arch": "convnext_tiny", "version": "v1", "input_size": "224"}),
        (1, {"arch": "convnext_tiny", "version": "v2", "input_size": "224"}),
    ]
    for recorder in (metrics._queue, metrics._ready_gauge, metrics._model_info):
        recorder.records.clear()
    metrics.refresh()  # what the daemon thread does every GAUGE_REFRESH_S
    assert metrics._queue.records == [(3, {})]
    assert metrics._ready_gauge.records == [(1, {})]
    assert metrics._model_info.records == [
        (1, {"arch": "convnext_tiny", "version": "v2", "input_size": "224"})
    ]
    assert m.GAUGE_REFRESH_S < 10  # under Ray's report interval: every report carries them
