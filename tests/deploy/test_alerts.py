"""The alert rules (deploy/prometheus/alerts.yaml) with the real promtool: they load, their
unit tests (alerts_test.yaml) pass, every alert has series that fire it and series that do not,
and breaking a rule's threshold makes those tests fail.

promtool comes from scripts/fetch_prometheus.sh (.tools/bin/promtool). Without it these tests
skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from service.metrics import METRICS
from tests.deploy.test_dashboard import ray_serve_declares
from tests.promtools import ALERTS, ALERTS_TEST, PROMTOOL, alert_rules, metric_names, require

RULES = alert_rules()
ALERT_NAMES = [rule["alert"] for rule in RULES]

# (alert, a piece of its expression, the same piece with the threshold moved far off)
BROKEN_THRESHOLDS = [
    ("RecognizeLatencyP99AboveSLO", ") > 2", ") > 20"),
    ("RecognizeServerErrorRatioHigh", "> 0.01", "> 0.5"),
    ("RecognizeClientErrorRatioHigh", "> 0.25", "> 0.9"),
    ("RecognizeNoReadyClassifier", ") < 1", ") < 0"),
    ("RecognizeManualReviewRatioJump", "> 1.5 *", "> 15 *"),
    ("RecognizeBatchQueueGrowing", ") > 8", ") > 80"),
]


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(require(PROMTOOL)), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_rules_load() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_firing_and_quiet_cases() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(ALERT_NAMES) <= fired, set(ALERT_NAMES) - fired
    assert set(ALERT_NAMES) <= quiet, set(ALERT_NAMES) - quiet


def test_rules_name_only_exported_metrics() -> None:
    ours = {series for spec in METRICS for series in spec.exported_series}
    for rule in RULES:
        for name in metric_names(rule["expr"]):
            assert name in ours or ray_serve_declares(name), (rule["alert"], name)
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alert_names_match_the_broken_threshold_cases() -> None:
    assert sorted(name for name, _, _ in BROKEN_THRESHOLDS) == sorted(ALERT_NAMES)


@pytest.mark.parametrize(
    ("alert", "piece", "broken"), BROKEN_THRESHOLDS, ids=[b[0] for b in BROKEN_THRESHOLDS]
)
def test_a_broken_threshold_fails_the_rule_tests(
    tmp_path: Path, alert: str, piece: str, broken: str
) -> None:
    """The unit tests can fail: with one threshold moved, promtool reports that alert."""
    require(PROMTOOL)
    document = yaml.safe_load(ALERTS.read_text())
    (rule,) = [r for g in document["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert piece in rule["expr"], (alert, piece)
    rule["expr"] = rule["expr"].replace(piece, broken)
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(document, sort_keys=False))
    # Only this alert's cases: the others would pass anyway, and the day-long ones are slow.
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    tests["tests"] = [
        case
        for case in tests["tests"]
        if any(check["alertname"] == alert for check in case.get("alert_rule_test", []))
    ]
    (tmp_path / ALERTS_TEST.name).write_text(yaml.safe_dump(tests, sort_keys=False))

    assert promtool("check", "rules", ALERTS.name, cwd=tmp_path).returncode == 0
    result = promtool("test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"alertname: {alert}," in result.stdout + result.stderr
