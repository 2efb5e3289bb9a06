"""Live Prometheus adjustment and the forecast, with the real operator, API server and Prometheus."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from campaign_autoscaler.devenv.prometheus import MetricFeed, PrometheusServer
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    active_soon,
    campaign_spec,
    free_port,
    scrape,
    seconds_from_now,
    utc_now,
    wait_until,
)
from tests.integration.promproxy import FAIL_500, PASS, SLOW, FaultyPrometheusProxy

METRIC = "shop_requests_per_second"
STABILIZATION = 6.0
METRICS_PORT = free_port()


@pytest.fixture
def proxy(prometheus: PrometheusServer) -> Iterator[FaultyPrometheusProxy]:
    server = FaultyPrometheusProxy(prometheus.url, slow_seconds=3.0).start()
    yield server
    server.stop()


def start_operator(
    kubeconfig: str, namespace: str, log: Path, prometheus_url: str, metrics_port: int | None = None
) -> OperatorProcess:
    extra = ["--metrics-port", str(metrics_port)] if metrics_port else []
    args = [*extra,
        "--namespace", namespace,
        "--resync-interval", "2s",
        "--prometheus-url", prometheus_url,
        "--prometheus-timeout", "1s",
        "--metrics-namespace-label", "",  # synthetic series without a namespace label (see test_tenancy.py)
        "--metrics-interval", "1s",
        "--scale-down-stabilization", f"{STABILIZATION}s",
    ]  # fmt: skip
    return OperatorProcess(str(kubeconfig), log, args).start()


@pytest.fixture
def operator(
    kubeconfig: str, namespace: str, tmp_path: Path, proxy: FaultyPrometheusProxy, campaignevent_crd: object
) -> Iterator[OperatorProcess]:
    process = start_operator(kubeconfig, namespace, tmp_path / "operator.log", proxy.url, METRICS_PORT)
    yield process
    code = process.stop()
    print(process.log()[-4000:])
    assert code == 0


def metric_target(namespace: str, name: str = "checkout", per_replica: float = 10, **extra) -> dict:
    query = f'sum({METRIC}{{test="{namespace}"}})'
    return {"name": name, "metric": {"query": query, "targetPerReplica": per_replica, **extra}}


def active_event(cluster: Cluster, target: dict, multiplier: float = 1.0) -> None:
    cluster.create_event("sale", active_soon([target], multiplier=multiplier))


def metrics_reason(cluster: Cluster) -> tuple[str, str] | None:
    condition = cluster.condition("sale", "MetricsAvailable")
    return (condition["status"], condition["reason"]) if condition else None


def test_replicas_follow_the_metric_up_at_once_and_down_only_after_stabilization(
    cluster: Cluster, metric_feed: MetricFeed, operator: OperatorProcess
):
    labels = {"test": cluster.namespace}
    metric_feed.set_and_wait(METRIC, 30, labels)
    cluster.create_deployment("checkout", replicas=2)
    active_event(cluster, metric_target(cluster.namespace))  # floor = ceil(2 x 1.0) = 2
    wait_until(lambda: cluster.replicas("checkout") == 3, timeout=10, message="30/10 -> 3 replicas")
    wait_until(
        lambda: metrics_reason(cluster) == ("True", "QueriesAnswered"),
        timeout=5,
        message="MetricsAvailable=True",
    )
    assert cluster.status("sale")["targets"][0]["metricValue"] == "30"

    metric_feed.set_and_wait(METRIC, 80, labels)
    seen_at = time.time()
    wait_until(lambda: cluster.replicas("checkout") == 8, timeout=5, message="80/10 -> 8 replicas")
    assert time.time() - seen_at <= 2 * 1.0 + 0.5, "a rise lands within two metric intervals"

    metric_feed.set_and_wait(METRIC, 5, labels)
    dropped_at = time.time()
    while time.time() - dropped_at < STABILIZATION - 1.5:
        assert cluster.replicas("checkout") == 8, "no fall before the stabilization window has passed"
        time.sleep(0.2)
    wait_until(
        lambda: cluster.replicas("checkout") == 2,
        timeout=STABILIZATION + 4,
        message="down to the floor after stabilization",
    )
    operator.wait_for_passes(cluster.namespace, "sale", 2)
    assert cluster.replicas("checkout") == 2, "never below the floor (5/10 would want 1)"


def test_prometheus_stopped_mid_window_holds_and_recovers(
    cluster: Cluster, metric_feed: MetricFeed, prometheus: PrometheusServer, operator: OperatorProcess
):
    labels = {"test": cluster.namespace}
    metric_feed.set_and_wait(METRIC, 60, labels)
    cluster.create_deployment("checkout", replicas=2)
    active_event(cluster, metric_target(cluster.namespace))
    wait_until(lambda: cluster.replicas("checkout") == 6, timeout=10, message="60/10 -> 6")

    prometheus.stop()
    try:
        wait_until(
            lambda: metrics_reason(cluster) == ("False", "HTTPError"),
            timeout=6,
            message="MetricsAvailable=False while Prometheus is down (the proxy answers 502)",
        )
        # Past the stabilization window (its length is what is tested), and decided again after it.
        time.sleep(STABILIZATION)
        operator.wait_for_passes(cluster.namespace, "sale", 2)
        assert cluster.replicas("checkout") == 6, "long past the stabilization window: still never lowered"
        warnings = cluster.k8s_events(reason="MetricsUnavailable")
        assert len(warnings) == 1, [w.message for w in warnings]
        assert "holding 6 replicas" in warnings[0].message
    finally:
        prometheus.start()
    wait_until(
        lambda: metrics_reason(cluster) == ("True", "QueriesAnswered"),
        timeout=30,
        message="MetricsAvailable=True after the restart",
    )
    assert cluster.k8s_events(reason="MetricsRecovered")
    assert cluster.replicas("checkout") == 6


def test_connection_refused_is_its_own_reason(
    cluster: Cluster, kubeconfig: str, namespace: str, tmp_path: Path, campaignevent_crd: object
):
    refused = FaultyPrometheusProxy("http://127.0.0.1:9").start()
    url = refused.url
    refused.stop()  # nothing listens there any more
    operator = start_operator(kubeconfig, namespace, tmp_path / "op.log", url)
    try:
        cluster.create_deployment("checkout", replicas=3)
        active_event(cluster, metric_target(namespace), multiplier=2)
        wait_until(
            lambda: metrics_reason(cluster) == ("False", "ConnectionFailed"),
            timeout=10,
            message="ConnectionFailed",
        )
        assert cluster.replicas("checkout") == 6, "blind from the start: the planned floor, nothing less"
    finally:
        assert operator.stop() == 0


def test_every_kind_of_bad_answer_holds_the_last_value_with_its_own_reason(
    cluster: Cluster, metric_feed: MetricFeed, proxy: FaultyPrometheusProxy, operator: OperatorProcess
):
    labels = {"test": cluster.namespace}
    metric_feed.set_and_wait(METRIC, 50, labels)
    cluster.create_deployment("checkout", replicas=1)
    # Not summed: so that several series and NaN reach the operator as they are.
    target = {
        "name": "checkout",
        "metric": {"query": f'{METRIC}{{test=~"{cluster.namespace}(-b)?"}}', "targetPerReplica": 10},
    }
    active_event(cluster, target)
    wait_until(lambda: cluster.replicas("checkout") == 5, timeout=10, message="50/10 -> 5")

    def expect(reason: str) -> None:
        wait_until(
            lambda: metrics_reason(cluster) == ("False", reason), timeout=8, message=f"reason {reason}"
        )
        assert cluster.replicas("checkout") == 5, f"held at 5 through {reason}"

    proxy.mode = FAIL_500
    expect("HTTPError")
    proxy.mode = SLOW
    expect("Timeout")
    proxy.mode = PASS
    metric_feed.set_and_wait(METRIC, 20, labels)  # a real answer again: recovered, wants 2, stabilized at 5
    wait_until(lambda: metrics_reason(cluster) == ("True", "QueriesAnswered"), timeout=5, message="recovered")
    metric_feed.set(METRIC, math.nan, labels)
    expect("NaN")
    metric_feed.remove(METRIC, labels)
    expect("NoSeries")
    metric_feed.set(METRIC, 1, labels)
    metric_feed.set(METRIC, 1, {"test": f"{cluster.namespace}-b"})
    expect("MultipleSeries")
    time.sleep(STABILIZATION)  # blind for as long as the stabilization window, then decided again
    operator.wait_for_passes(cluster.namespace, "sale", 2)
    assert cluster.replicas("checkout") == 5, "blind for longer than the stabilization window: still held"
    warnings = cluster.k8s_events(reason="MetricsUnavailable")
    assert len(warnings) == 2, "one Warning per outage, not per sample: " + str([w.message for w in warnings])
    exposed = scrape(METRICS_PORT)
    for reason in ("HTTPError", "Timeout", "NaN", "NoSeries", "MultipleSeries"):
        assert f'campaign_autoscaler_prometheus_query_errors_total{{reason="{reason}"}}' in exposed, reason
    assert 'campaign_autoscaler_prometheus_query_duration_seconds_count{outcome="ok"}' in exposed


def test_a_malformed_query_makes_the_event_invalid_before_the_window(
    cluster: Cluster, metric_feed: MetricFeed, operator: OperatorProcess
):
    cluster.create_deployment("checkout", replicas=2)
    start = utc_now() + timedelta(hours=1)
    target = {
        "name": "checkout",
        "metric": {"query": "sum(rate(http_requests_total[2m]", "targetPerReplica": 5},
    }
    cluster.create_event("sale", campaign_spec(start=start, end=start + timedelta(hours=1), targets=[target]))
    wait_until(lambda: cluster.phase("sale") == "Invalid", timeout=10, message="phase Invalid")
    valid = cluster.condition("sale", "Valid")
    assert valid["status"] == "False"
    assert valid["message"].startswith("spec.targets[0].metric.query: rejected by Prometheus"), valid
    assert cluster.replicas("checkout") == 2
    assert cluster.campaign_annotations("checkout") == {}


def backfill_previous_campaign(
    prometheus: PrometheusServer, series: str, peak_at: float, peak: float
) -> None:
    """An hour of history around `peak_at`: a normal 20 rps with the previous sale's peak in the middle."""
    lines = ["# TYPE shop_orders_rps gauge"]
    for second in range(int(peak_at) - 1800, int(peak_at) + 1800, 15):
        value = peak if abs(second - peak_at) < 8 else 20.0
        lines.append(f"{series} {value} {second}")
    prometheus.backfill_openmetrics("\n".join(lines) + "\n# EOF\n")


def test_forecast_floor_comes_from_the_previous_campaigns_peak(
    cluster: Cluster, metric_feed: MetricFeed, prometheus: PrometheusServer, operator: OperatorProcess
):
    start = seconds_from_now(20)
    end = start + timedelta(seconds=30)
    # The previous campaign: same window, one hour earlier, peaking at 120 rps.
    backfill_previous_campaign(
        prometheus,
        f'shop_orders_rps{{test="{cluster.namespace}"}}',
        peak_at=(start + timedelta(seconds=10) - timedelta(hours=1)).timestamp(),
        peak=120,
    )
    wait_until(lambda: prometheus.is_running(), timeout=10, message="Prometheus back after the backfill")
    cluster.create_deployment("checkout", replicas=2)
    target = {
        "name": "checkout",
        "metric": {
            "query": f'sum(shop_orders_rps{{test="{cluster.namespace}"}})',
            "targetPerReplica": 10,
            "forecast": {"offset": "1h", "growth": 1.5},
        },
    }
    cluster.create_event(
        "sale",
        campaign_spec(start=start, end=end, lead_time="6s", ramp_up_steps=1, multiplier=2, targets=[target]),
    )
    # forecast = ceil(120 x 1.5 / 10) = 18 > plain floor ceil(2 x 2) = 4
    wait_until(lambda: cluster.replicas("checkout") == 18, timeout=30, message="forecast floor 18")

    # The status is written right after the claim: wait for it rather than race it.
    def first_target_with_forecast() -> dict[str, Any] | None:
        entry = next(iter(cluster.status("sale").get("targets") or []), {})  # one read of the status
        return entry if "forecastPeak" in entry else None

    entry = wait_until(first_target_with_forecast, timeout=5, message="forecast in status")
    assert entry["forecastReplicas"] == 18
    assert entry["forecastPeak"] == "120"
    assert entry["reason"].startswith("floor 18 = forecast 18")
    forecast = cluster.condition("sale", "ForecastAvailable")
    assert forecast["status"] == "True" and "peak 120" in forecast["message"]


def test_forecast_without_history_keeps_the_plain_floor(
    cluster: Cluster, metric_feed: MetricFeed, operator: OperatorProcess
):
    cluster.create_deployment("checkout", replicas=2)
    target = {
        "name": "checkout",
        "metric": {
            "query": f'sum(shop_orders_rps{{test="none-{cluster.namespace}"}})',
            "targetPerReplica": 10,
            "forecast": {"offset": "365d"},
        },
    }
    active_event(cluster, target, multiplier=2)
    wait_until(lambda: cluster.replicas("checkout") == 4, timeout=10, message="plain floor 4")
    forecast = wait_until(
        lambda: cluster.condition("sale", "ForecastAvailable"),
        timeout=5,
        message="ForecastAvailable condition",
    )
    assert forecast["status"] == "False" and forecast["reason"] == "NoData", forecast
    assert "forecastReplicas" not in cluster.status("sale")["targets"][0]
