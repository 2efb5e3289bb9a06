"""The dashboard and the alerting rules against the real thing: a real Prometheus scraping a running
operator (job campaign-autoscaler, with monitoring/alerts.yaml loaded) while a campaign is under way. Every
dashboard query returns series, every rule evaluates without error, and the metrics-unavailable alert goes
pending when the operator's own metric queries fail in the window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from campaign_autoscaler.devenv.prometheus import PROMETHEUS_HELP, PrometheusServer, find_prometheus
from tests.integration.conftest import require
from tests.integration.harness import (
    REPO,
    Cluster,
    OperatorProcess,
    campaign_spec,
    free_port,
    seconds_from_now,
    wait_until,
)

RULES = REPO / "monitoring" / "alerts.yaml"
DASHBOARD = REPO / "monitoring" / "dashboard.json"


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.fixture
def operator_metrics_port(
    kubeconfig: str, namespace: str, tmp_path: Path, campaignevent_crd: object
) -> Iterator[int]:
    """The operator with /metrics, and a Prometheus URL where nothing listens: its metric queries fail."""
    port = free_port()
    args = [
        "--namespace", namespace,
        "--resync-interval", "2s",
        "--metrics-port", str(port),
        "--metrics-interval", "1s",
        "--prometheus-url", f"http://127.0.0.1:{free_port()}",
        "--prometheus-timeout", "1s",
    ]  # fmt: skip
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", args).start()
    yield port
    code = operator.stop()
    print(operator.log()[-3000:])
    assert code == 0


@pytest.fixture
def scraping(operator_metrics_port: int) -> Iterator[PrometheusServer]:
    require(find_prometheus() is not None, PROMETHEUS_HELP)
    server = PrometheusServer(
        [f"127.0.0.1:{operator_metrics_port}"], job_name="campaign-autoscaler", rule_files=[RULES]
    )
    with server:
        yield server


def test_every_dashboard_query_returns_series_and_every_rule_evaluates(
    scraping: PrometheusServer, api_client: object, namespace: str
) -> None:
    cluster = Cluster(api_client, namespace)
    cluster.create_deployment("checkout", replicas=2)
    cluster.create_deployment("orders", replicas=1)
    start = seconds_from_now(6)
    cluster.create_event(
        "sale",
        campaign_spec(
            start=start,
            end=start + timedelta(minutes=5),
            lead_time="3s",
            ramp_up_steps=1,
            targets=[
                {"name": "orders", "replicas": 3},
                {"name": "checkout", "metric": {"query": "sum(shop_rps)", "targetPerReplica": 10}},
            ],
        ),
    )
    wait_until(lambda: cluster.phase("sale") == "Active", timeout=20, message="the window open")
    for title, expr in dashboard_queries():
        samples = scraping.wait_for(expr, bool, timeout=45)
        print(f"{title}: {expr} -> {len(samples)} series")

    def evaluated_rules() -> list[dict]:
        loaded = scraping.rules()
        return (
            loaded
            if loaded and all(rule.get("lastEvaluation", "").startswith("20") for rule in loaded)
            else []
        )

    loaded = wait_until(evaluated_rules, timeout=20, message="every rule evaluated")
    assert {rule["name"] for rule in loaded} == {
        "CampaignCapacityShort",
        "CampaignMetricsUnavailable",
        "CampaignLeadTimeTooShort",
        "CampaignTransitionLagHigh",
        "CampaignAutoscalerDown",
    }
    assert [(rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"] == []

    def metrics_alert() -> list[dict]:
        rule = next(rule for rule in scraping.rules() if rule["name"] == "CampaignMetricsUnavailable")
        return rule["alerts"]

    (alert,) = wait_until(metrics_alert, timeout=30, message="CampaignMetricsUnavailable pending")
    assert alert["state"] == "pending"  # for: 5m
    assert alert["labels"]["reason"] == "ConnectionFailed"
    down = next(rule for rule in scraping.rules() if rule["name"] == "CampaignAutoscalerDown")
    assert down["alerts"] == []  # the operator is scraped
