"""`--metrics-namespace-label` in the pass: Prometheus is only ever asked the query held to the event's
namespace, for readings and forecasts alike, and a query that names another namespace makes the event
Invalid before anything is asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaign_autoscaler.handlers.runtime import OperatorConfig, Runtime
from tests.unit.fakes import NAMESPACE, Clock, EventDriver, FakeKube, ScriptedMetrics, deployment_body

START = datetime(2026, 9, 9, 0, 0, tzinfo=UTC)
QUERY = 'sum(rate(http_requests_total{app="checkout"}[2m]))'
SCOPED = f'sum(rate(http_requests_total{{app="checkout",namespace="{NAMESPACE}"}}[2m]))'


def driver(query: str, label: str = "namespace") -> tuple[EventDriver, ScriptedMetrics, FakeKube, Clock]:
    kube, metrics, clock = FakeKube(), ScriptedMetrics(), Clock(START - timedelta(minutes=10))
    kube.add_deployment(deployment_body("checkout", 4))
    spec = {
        "start": "2026-09-09T00:00:00Z",
        "end": "2026-09-09T10:00:00Z",
        "leadTime": "30m",
        "targets": [
            {
                "name": "checkout",
                "metric": {"query": query, "targetPerReplica": 100, "forecast": {"offset": "7d"}},
            }
        ],
    }
    runtime = Runtime(
        config=OperatorConfig(metrics_namespace_label=label), kube=kube, metrics=metrics, clock=clock
    )
    return EventDriver(runtime, kube, spec), metrics, kube, clock


def test_prometheus_is_asked_only_the_scoped_query():
    event, metrics, kube, _ = driver(QUERY)
    metrics.values[SCOPED] = 1500.0
    metrics.peaks[SCOPED] = 1200.0
    event.step()
    status = event.status
    assert set(metrics.value_calls) == {SCOPED}
    assert {asked for asked, _, _ in metrics.peak_calls} == {SCOPED}
    assert status["phase"] == "PreScaling"
    assert kube.replicas("checkout") == 15
    assert status["targets"][0]["metricValue"] == "1500"


def test_a_query_naming_another_namespace_is_invalid_and_never_sent():
    event, metrics, kube, _ = driver('sum(rate(http_requests_total{namespace="payments"}[2m]))')
    event.step()
    status = event.status
    assert status["phase"] == "Invalid"
    valid = next(item for item in status["conditions"] if item["type"] == "Valid")
    assert valid["status"] == "False"
    assert valid["message"].startswith("spec.targets[0].metric.query: selector ")
    assert 'namespace="payments"' in valid["message"]
    assert not metrics.value_calls and not metrics.peak_calls
    assert kube.replicas("checkout") == 4


def test_an_empty_label_sends_the_query_as_written():
    event, metrics, _, _ = driver(QUERY, label="")
    metrics.values[QUERY] = 100.0
    event.step()
    assert set(metrics.value_calls) == {QUERY}
