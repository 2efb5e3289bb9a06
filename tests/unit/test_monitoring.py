"""The alerting rules and the Grafana dashboard in monitoring/: the real promtool checks and unit-tests the
rules, every PromQL expression parses (promql-parser), and every series they read is one the operator
exports. That each dashboard query returns series from a running operator is an integration test
(tests/integration/test_monitoring.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from campaign_autoscaler.adapters.telemetry import Telemetry
from campaign_autoscaler.devenv.prometheus import PROMETHEUS_HELP, find_promtool

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
RULES = MONITORING / "alerts.yaml"
RULE_TESTS = MONITORING / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboard.json"
# What the issue asks the rules to cover, by alert name.
EXPECTED_ALERTS = {
    "CampaignCapacityShort",  # capacity short in an open window
    "CampaignMetricsUnavailable",  # metrics unavailable in a window
    "CampaignLeadTimeTooShort",
    "CampaignTransitionLagHigh",
    "CampaignAutoscalerDown",
}
SUBEXPRESSIONS = ("lhs", "rhs", "expr", "param", "vector_selector")


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def all_expressions() -> list[tuple[str, str]]:
    return [(f"alert {rule['alert']}", rule["expr"]) for rule in rules()] + [
        (f"panel {title}", expr) for title, expr in dashboard_queries()
    ]


def metric_names(node: Any) -> Iterator[str]:
    """Every metric name a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    for attribute in SUBEXPRESSIONS:
        child = getattr(node, attribute, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from metric_names(child)
    for argument in getattr(node, "args", None) or []:
        yield from metric_names(argument)


def exported_series_names() -> set[str]:
    """The series names the operator's registry exposes (counters with _total, histograms' parts)."""
    names = set()
    for family in Telemetry().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
        else:
            names.add(family.name)
    return names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = find_promtool()
    assert binary is not None, PROMETHEUS_HELP  # `make bootstrap` installs it
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in checked.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rules_are_the_ones_asked_for_each_with_a_severity() -> None:
    assert {rule["alert"] for rule in rules()} == EXPECTED_ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    for alert in EXPECTED_ALERTS:
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == alert]
        assert True in outcomes, f"{alert}: no case where it fires"
        assert False in outcomes, f"{alert}: no case where it must not fire"


@pytest.mark.parametrize(("where", "expr"), all_expressions(), ids=[where for where, _ in all_expressions()])
def test_every_expression_parses_and_reads_exported_series(where: str, expr: str) -> None:
    parsed = promql_parser.parse(expr)
    names = set(metric_names(parsed))
    assert names, f"{where}: selects no series"
    assert names <= exported_series_names(), (
        f"{where}: not exported by the operator: {names - exported_series_names()}"
    )


def test_the_dashboard_shows_what_the_issue_asks() -> None:
    seen = {name for _, expr in dashboard_queries() for name in metric_names(promql_parser.parse(expr))}
    assert "campaign_autoscaler_events" in seen  # events by phase
    assert {
        "campaign_autoscaler_target_desired_replicas",
        "campaign_autoscaler_target_ready_replicas",
    } <= seen
    assert "campaign_autoscaler_transition_lag_seconds_bucket" in seen
    assert "campaign_autoscaler_prometheus_query_errors_total" in seen
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "campaign-autoscaler"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
