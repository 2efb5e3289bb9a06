"""Nothing delays a transition: a Prometheus that hangs is sampled beside the passes, and a target pushed
below its floor is raised again from its watch event, not at the next resync.

The real operator process, the real API server and a real Prometheus behind a proxy that holds every query.
Replica changes are timed by a watch of the test's own (`DeploymentRecorder`), against the instants the
timeline makes them due.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import client

from campaign_autoscaler.devenv.prometheus import MetricFeed, PrometheusServer
from tests.integration.faultproxy import DeploymentRecorder, DeploymentVersion
from tests.integration.harness import (
    Cluster,
    active_soon,
    campaign_spec,
    running_operator,
    seconds_from_now,
    wait_until,
)
from tests.integration.promproxy import SLOW, FaultyPrometheusProxy

METRIC = "shop_requests_per_second"
HANG_SECONDS = 35.0  # every query is answered only after this long: later than 30 s
CONCURRENCY = 3
EVENTS = 6  # each with a query of its own: twice as many queries as the operator may have in flight
TRANSITION_LAG_SECONDS = 1.0  # a ramp step lands within this long of its due instant
DRIFT_SECONDS = 1.0  # a target pushed below its floor is raised again within this long


@pytest.fixture
def hanging_prometheus(prometheus: PrometheusServer) -> Iterator[FaultyPrometheusProxy]:
    proxy = FaultyPrometheusProxy(prometheus.url, slow_seconds=HANG_SECONDS).start()
    proxy.mode = SLOW
    yield proxy
    proxy.stop()


@pytest.fixture
def recorder(api_client: client.ApiClient, cluster: Cluster) -> Iterator[DeploymentRecorder]:
    with DeploymentRecorder(api_client, namespace=cluster.namespace) as watching:
        yield watching
        cluster.create_deployment("recorder-nudge", 0)  # ends the recorder's watch request early


def replica_changes(versions: list[DeploymentVersion], name: str) -> list[tuple[float, int]]:
    """(seen at, replicas) for each version of `name` whose replicas differ from the version before."""
    changes: list[tuple[float, int]] = []
    for version in versions:
        if version.name == name and (not changes or changes[-1][1] != version.replicas):
            changes.append((version.seen_at, version.replicas))
    return changes


def test_a_prometheus_that_hangs_delays_no_transition(
    cluster: Cluster,
    kubeconfig: str,
    tmp_path: Path,
    metric_feed: MetricFeed,
    hanging_prometheus: FaultyPrometheusProxy,
    recorder: DeploymentRecorder,
):
    namespace = cluster.namespace
    args = [
        "--namespace", namespace,
        "--prometheus-url", hanging_prometheus.url,
        "--prometheus-timeout", f"{HANG_SECONDS + 10:.0f}s",  # the client waits: the answer comes, late
        "--metrics-interval", "1s",
        "--metrics-concurrency", str(CONCURRENCY),
        "--resync-interval", "30s",
    ]  # fmt: skip
    start = seconds_from_now(14)
    due = {}  # Deployment -> {replicas: due instant}
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as operator:
        for index in range(EVENTS):
            name = f"app-{index}"
            cluster.create_deployment(name, replicas=2)
            query = f'sum({METRIC}{{test="{namespace}", app="{name}"}})'
            target = {"name": name, "replicas": 6, "metric": {"query": query, "targetPerReplica": 10}}
            cluster.create_event(
                f"sale-{index}",
                campaign_spec(
                    start=start, end=start + timedelta(minutes=5), targets=[target], lead_time="4s"
                ),
            )
            # Ramp-up in two steps over the lead time: 2 -> 4 at start - 4 s, 4 -> 6 at start - 2 s.
            due[name] = {
                4: (start - timedelta(seconds=4)).timestamp(),
                6: (start - timedelta(seconds=2)).timestamp(),
            }
        wait_until(
            lambda: all(cluster.replicas(name) == 6 for name in due),
            timeout=(start.timestamp() - time.time()) + 10,
            message="every ramp-up step applied",
        )
        in_flight_during_the_hang = hanging_prometheus.queries
        log = operator.log()
    assert in_flight_during_the_hang <= CONCURRENCY, "no more queries in flight than --metrics-concurrency"
    assert in_flight_during_the_hang >= 1, "the operator did ask the hanging Prometheus"
    lags = []
    versions = recorder.versions()
    for name, steps in due.items():
        changes = replica_changes(versions, name)
        assert [replicas for _, replicas in changes] == [2, 4, 6], (name, changes)
        for seen_at, replicas in changes[1:]:
            lags.append(seen_at - steps[replicas])
    print(f"\n{len(lags)} ramp steps while every query hangs: lags {sorted(round(lag, 3) for lag in lags)}")
    assert min(lags) >= -0.05, "no step before it is due"
    assert max(lags) <= TRANSITION_LAG_SECONDS, f"a step landed {max(lags):.2f}s late\n{log[-4000:]}"


def test_drift_below_the_floor_is_raised_from_the_watch_within_a_second(
    cluster: Cluster, kubeconfig: str, tmp_path: Path, recorder: DeploymentRecorder
):
    # A resync far longer than the guarantee: only the watch can explain a correction within a second.
    args = ["--namespace", cluster.namespace, "--resync-interval", "60s"]
    cluster.create_deployment("checkout", replicas=2)
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as operator:
        cluster.create_event("sale", active_soon([{"name": "checkout", "replicas": 20}]))
        wait_until(lambda: cluster.replicas("checkout") == 20, timeout=15, message="floor 20")
        for _ in range(5):
            cluster.scale("checkout", 4)  # `kubectl apply` of the application mid-sale
            wait_until(lambda: cluster.replicas("checkout") == 20, timeout=5, message="floor re-asserted")
            time.sleep(0.5)
        cluster.scale("checkout", 30)  # a person scales above the floor: left alone
        time.sleep(3)
        assert cluster.replicas("checkout") == 30
        log = operator.log()
    changes = replica_changes(recorder.versions(), "checkout")
    assert [replicas for _, replicas in changes] == [2, 20] + [4, 20] * 5 + [30], changes
    latencies = [changes[i + 1][0] - changes[i][0] for i in range(2, 12, 2)]
    print(f"\ndrift re-asserted after {[round(latency, 3) for latency in latencies]} s")
    assert max(latencies) <= DRIFT_SECONDS, f"{latencies}\n{log[-4000:]}"
    # One write per change: the operator's own account of its scale writes.
    assert log.count(f"Scaled Deployment {cluster.namespace}/checkout 4 -> 20") == 5
    assert log.count(f"Scaled Deployment {cluster.namespace}/checkout 2 -> 20") == 1
