"""PromQL tenancy with the real operator, API server and Prometheus: two namespaces with their own series
under the same metric names. Events in `shop` try to reach `payments` by naming it, by naming no namespace,
through a subquery, a binary operation, `offset`, `@`, `absent()` and `label_replace`: none ever gets a
`payments` value into its status or Events; each is either scoped (and reads shop's own value) or Invalid
naming the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.devenv.prometheus import MetricFeed, PrometheusServer
from tests.integration.conftest import namespace_name
from tests.integration.harness import Cluster, active_soon, running_operator, wait_until

pytestmark = pytest.mark.integration

SERIES = "tenancy_requests_per_second"
PAYMENTS_ONLY = "tenancy_payments_only"
SHOP_VALUE = 120.0
PAYMENTS_VALUE = 98765.0

# Scoped: the query runs held to the event's namespace, and reads what shop holds.
SCOPED = {
    "no-namespace": (f"max({SERIES})", "120"),
    "subquery": (f"max_over_time(max({SERIES})[30s:1s])", "120"),
    "binary": (f"max({SERIES}) + 0 * count({SERIES})", "120"),
    "offset": (f"max({SERIES} offset 1s)", "120"),
    "at": (f"max({SERIES} @ end())", "120"),
    "label-replace": (f'max(label_replace({SERIES}, "namespace", "shop", "", ""))', "120"),
    # Only payments has this series: unscoped, absent() would be empty; held to shop, it says 1.
    "absent": (f"absent({PAYMENTS_ONLY})", "1"),
}


def refused(payments: str) -> dict[str, str]:
    """Queries that name another namespace: Invalid, never sent."""
    return {
        "names-payments": f'max({SERIES}{{namespace="{payments}"}})',
        "binary-unscoped": f'max({SERIES}) + max({SERIES}{{namespace=~".+"}})',
        "absent-payments": f'absent({PAYMENTS_ONLY}{{namespace="{payments}"}})',
        "subquery-not-shop": f'max_over_time(max({SERIES}{{namespace!="shop"}})[1m:1s])',
        "label-replace-payments": (
            f'max(label_replace({SERIES}{{namespace="{payments}"}}, "namespace", "shop", "", ""))'
        ),
    }


def metric_target(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "maxReplicas": 3,
        "metric": {"query": query, "targetPerReplica": 1000, "forecast": {"offset": "1m"}},
    }


@pytest.fixture
def payments(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = namespace_name("payments")
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as err:
        if err.status != 404:
            raise


def test_an_event_never_reads_another_namespaces_series(
    cluster: Cluster,
    payments: str,
    kubeconfig: str,
    metric_feed: MetricFeed,
    prometheus: PrometheusServer,
    tmp_path: Path,
):
    shop = cluster.namespace
    metric_feed.set_and_wait(SERIES, SHOP_VALUE, {"namespace": shop, "app": "checkout"})
    metric_feed.set_and_wait(SERIES, PAYMENTS_VALUE, {"namespace": payments, "app": "checkout"})
    metric_feed.set_and_wait(PAYMENTS_ONLY, PAYMENTS_VALUE, {"namespace": payments})
    invalid = refused(payments)
    for name in [*SCOPED, *invalid]:
        cluster.create_deployment(name, 1)
        cluster.create_deployment(name, 1, namespace=payments)

    args = [
        "--namespace", shop,
        "--resync-interval", "2s",
        "--metrics-interval", "1s",
        "--prometheus-url", prometheus.url,
    ]  # fmt: skip
    with running_operator(kubeconfig, tmp_path / "operator.log", args) as operator:
        for name, (query, _) in SCOPED.items():
            cluster.create_event(name, active_soon([metric_target(name, query)]))
        for name, query in invalid.items():
            cluster.create_event(name, active_soon([metric_target(name, query)]))

        def metric_values() -> dict[str, str] | None:
            values = {}
            for name in SCOPED:
                targets = cluster.status(name).get("targets") or []
                if not targets or "metricValue" not in targets[0]:
                    return None
                values[name] = targets[0]["metricValue"]
            return values

        values = wait_until(metric_values, timeout=90, interval=0.5, message="every metricValue")
        assert values == {name: expected for name, (_, expected) in SCOPED.items()}, operator.log()[-3000:]

        for name in invalid:
            valid = wait_until(
                lambda name=name: cluster.condition(name, "Valid"), timeout=30, message=f"{name} judged"
            )
            assert cluster.phase(name) == "Invalid", name
            assert valid["message"].startswith("spec.targets[0].metric.query: selector "), valid
            assert f'may only see series with namespace="{shop}"' in valid["message"], valid

        seen = [cluster.status(name) for name in [*SCOPED, *invalid]]
        events = [event.message or "" for event in cluster.k8s_events()]
        log = operator.log()
    leaked = [text for text in [*map(str, seen), *events] if "98765" in text]
    assert not leaked, leaked
    assert "98765" not in log
    for name in SCOPED:
        peak = (cluster.status(name).get("targets") or [{}])[0].get("forecastPeak")
        assert peak in (None, "120", "1"), (name, peak)
    assert all(cluster.replicas(name, payments) == 1 for name in [*SCOPED, *invalid])
