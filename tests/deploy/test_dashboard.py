"""The Grafana dashboard, offline: every query parses as PromQL, names only metrics the service
declares (service/metrics.py), that this Ray Serve version declares, or the NVIDIA DCGM
exporter's, and honours the namespace and application variables.

Running every query against a real Prometheus scraping the service is in
tests/integration/test_metrics.py.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import promql_parser
import pytest
import ray.serve

from service.metrics import METRICS
from tests.promtools import (
    DASHBOARD,
    DCGM_METRICS,
    dashboard_targets,
    grafana_to_promql,
    metric_names,
    selectors,
)

OURS = {series for spec in METRICS for series in spec.exported_series}
TARGETS = dashboard_targets()
MARK = "__VARIABLE__"  # stands in for a template variable, so its use can be found in the AST


@cache
def ray_serve_metric_names() -> frozenset[str]:
    """Names Ray Serve declares in its source (``serve_...``), as exported: ``ray_`` prefix."""
    root = Path(ray.serve.__file__).parent
    names: set[str] = set()
    for source in root.rglob("*.py"):
        names.update(re.findall(r'"(serve_[a-z0-9_]+)"', source.read_text(errors="replace")))
    return frozenset("ray_" + name for name in names)


def ray_serve_declares(series: str) -> bool:
    base = re.sub(r"_(bucket|count|sum|total)$", "", series)
    candidates = ray_serve_metric_names()
    return series in candidates or base in candidates


def test_dashboard_is_grafana_json_with_its_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "recognize" and dashboard["title"] == "Recognize"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for name in ("namespace", "application"):
        # All must also match series without the label (a local run has no namespace).
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name
    assert len(TARGETS) >= 20


@pytest.mark.parametrize(("title", "expr"), TARGETS, ids=[t for t, _ in TARGETS])
def test_query_parses_and_names_known_metrics(title: str, expr: str) -> None:
    promql = grafana_to_promql(expr)
    try:
        names = metric_names(promql)
    except ValueError as exc:
        pytest.fail(f"{title}: {promql} does not parse: {exc}")
    assert names, title
    for name in names:
        known = name in OURS or name in DCGM_METRICS or ray_serve_declares(name)
        assert known, f"{title}: {name} is neither ours, Ray Serve's nor DCGM's"


@pytest.mark.parametrize(("title", "expr"), TARGETS, ids=[t for t, _ in TARGETS])
def test_every_selector_honours_the_namespace_variable(title: str, expr: str) -> None:
    for selector in selectors(grafana_to_promql(expr, variables=MARK)):
        label = "exported_namespace" if selector.name in DCGM_METRICS else "namespace"
        matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
        assert (label, str(promql_parser.MatchOp.Re), MARK) in matchers, (title, selector)
        if selector.name.startswith("ray_"):
            assert ("application", str(promql_parser.MatchOp.Re), MARK) in matchers, title


def test_every_service_metric_is_on_the_dashboard() -> None:
    used = {name for _, expr in TARGETS for name in metric_names(grafana_to_promql(expr))}
    missing = [spec.exported for spec in METRICS if not set(spec.exported_series) & used]
    assert not missing, missing


def test_gpu_panels_name_the_dcgm_metrics() -> None:
    for title, expr in TARGETS:
        for name in metric_names(grafana_to_promql(expr)) & DCGM_METRICS:
            assert name in title, (title, name)
    used = {n for _, expr in TARGETS for n in metric_names(grafana_to_promql(expr))}
    assert used >= DCGM_METRICS


def test_the_name_check_can_fail() -> None:
    assert not ray_serve_declares("ray_serve_no_such_metric")
    assert ray_serve_declares("ray_serve_deployment_replica_healthy")
    with pytest.raises(ValueError):
        metric_names(grafana_to_promql("sum(rate(ray_recognize_requests_total[$__rate_interval])"))
