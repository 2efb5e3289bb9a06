"""Why capacity is missing, against a real kube-scheduler and simulated Nodes: too few Nodes reads as
Unschedulable with the scheduler's own message, a ResourceQuota that refuses the floor as QuotaExceeded.

The operator runs as its own ServiceAccount with exactly the ClusterRole of manifests/ (Pods: list and watch,
and create and delete for node headroom's placeholders; nothing on Secrets), so a missing grant shows as a 403
in its log. test_preemption.py runs in a world of its own made the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from campaign_autoscaler.devenv.controlplane import (
    MISSING_ASSETS_HELP,
    SCHEDULER_BINARY,
    ControlPlane,
    SchedulingWorld,
    find_assets,
)
from campaign_autoscaler.devenv.nodes import NodeShape
from tests.integration.conftest import namespace_name, require
from tests.integration.harness import (
    Cluster,
    OperatorProcess,
    active_soon,
    deployment_body,
    ensure_crd,
    install_from_manifests,
    scrape,
    wait_until,
)

NODES = 3
NODE_SHAPE = NodeShape(cpu="2", memory="8Gi", pods=30)
SCHEDULER_MESSAGE = "0/3 nodes are available: 3 Insufficient cpu."
INSTALLED_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "PriorityClass")
DENIED = re.compile(r"\b403\b")


@contextmanager
def operator_ready_plane(world: SchedulingWorld) -> Iterator[ControlPlane]:
    """A control plane of its own with `world`, the operator's CRD from crds/, and its RBAC and node
    headroom's PriorityClass from manifests/ (as the chart renders them)."""
    assets = find_assets()
    require(assets is not None and (assets / SCHEDULER_BINARY).is_file(), MISSING_ASSETS_HELP)
    with ControlPlane(assets, scheduling=world, pod_ready_after=0.5) as plane:
        with kubernetes.config.new_client_from_config(
            config_file=str(plane.kubeconfig_path), persist_config=False
        ) as api_client:
            ensure_crd(api_client)
            install_from_manifests(api_client, INSTALLED_KINDS)
        yield plane


@pytest.fixture(scope="module")
def scheduling_plane() -> Iterator[ControlPlane]:
    """Three Nodes of 2 CPU and no node provisioner: what does not fit stays Pending."""
    with operator_ready_plane(SchedulingWorld(nodes=NODES, shape=NODE_SHAPE)) as plane:
        yield plane


@pytest.fixture
def admin(scheduling_plane: ControlPlane) -> Iterator[kubernetes.client.ApiClient]:
    with kubernetes.config.new_client_from_config(
        config_file=str(scheduling_plane.kubeconfig_path), persist_config=False
    ) as api_client:
        yield api_client


@pytest.fixture
def cluster(request: pytest.FixtureRequest, admin: kubernetes.client.ApiClient) -> Iterator[Cluster]:
    name = namespace_name(request.node.name)
    core = kubernetes.client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": name}})
    yield Cluster(admin, name)
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def operator(scheduling_plane: ControlPlane, cluster: Cluster, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator as its ServiceAccount (the restricted identity), watching every namespace as the
    manifests install it."""
    process = OperatorProcess(
        str(scheduling_plane.restricted_kubeconfig_path),
        tmp_path / "operator.log",
        ["--all-namespaces", "--resync-interval", "2s"],
    ).start()
    yield process
    code = process.stop()
    log = process.log()
    print(log[-4000:])
    assert code == 0, f"Operator exited with {code} on SIGTERM"
    # A 403 on any request (a refused quota's "forbidden" is the API server's word about Pods, not ours).
    assert not [line for line in log.splitlines() if DENIED.search(line.split("] ", 1)[-1])]


def requesting(name: str, replicas: int, cpu: str) -> dict[str, Any]:
    return deployment_body(name, replicas, requests={"cpu": cpu})


def capacity(cluster: Cluster) -> dict[str, Any]:
    return cluster.condition("sale", "CapacityReady") or {}


def target_entry(cluster: Cluster) -> dict[str, Any]:
    targets = cluster.status("sale").get("targets") or [{}]
    return dict(targets[0])


def unready_series(operator: OperatorProcess, namespace: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(scrape(operator.metrics_port)):
        if family.name == "campaign_autoscaler_target_unready_replicas":
            for sample in family.samples:
                if sample.labels.get("namespace") == namespace:
                    found[sample.labels["reason"]] = sample.value
    return found


def held_back(cluster: Cluster, cpu: str, reason: str, settled: Callable[[str], bool]) -> dict[str, Any]:
    """Deployment web, 2 Pods of `cpu` each, Ready; then an event whose window opens at once raises it to
    its floor of 2 x 2.5 = 5. Returns CapacityReady once its reason is `reason` and its message `settled`
    (a pod may still be starting when the reason first shows: the message then says so)."""
    cluster.apps.create_namespaced_deployment(cluster.namespace, requesting("web", 2, cpu))
    wait_until(lambda: cluster.ready("web") == 2, timeout=30, message="the baseline Ready")
    cluster.create_event("sale", active_soon([{"name": "web"}]))
    wait_until(
        lambda: capacity(cluster).get("reason") == reason and settled(capacity(cluster).get("message", "")),
        timeout=45,
        message=f"CapacityReady=False/{reason}",
    )
    return capacity(cluster)


def test_too_few_nodes_read_as_unschedulable_with_the_schedulers_message(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    # 1.5 CPU a Pod on Nodes of 2 CPU: one Pod a Node, three in all.
    expected = f"web: 3/5 Ready; 2 unschedulable: {SCHEDULER_MESSAGE}"
    condition = held_back(cluster, "1500m", "Unschedulable", lambda message: message == expected)
    assert condition["status"] == "False"
    assert condition["message"] == expected
    entry = target_entry(cluster)
    assert (entry["desiredReplicas"], entry["pendingReplicas"], entry["notReadyReason"]) == (
        5,
        2,
        "Unschedulable",
    )
    warnings = cluster.k8s_events(reason="Unschedulable", kind="CampaignEvent")
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert SCHEDULER_MESSAGE in warnings[0].message
    wait_until(
        lambda: unready_series(operator, cluster.namespace) == {"Unschedulable": 2.0},
        timeout=10,
        message="campaign_autoscaler_target_unready_replicas{reason=Unschedulable} 2",
    )


def test_a_quota_that_refuses_the_floor_reads_as_quota_exceeded(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    cluster.core.create_namespaced_resource_quota(
        cluster.namespace, {"metadata": {"name": "floor-quota"}, "spec": {"hard": {"pods": "3"}}}
    )
    wait_until(
        lambda: cluster.core.read_namespaced_resource_quota("floor-quota", cluster.namespace).status.hard,
        timeout=30,
        message="the quota's usage computed",
    )
    condition = held_back(
        cluster,
        "100m",
        "QuotaExceeded",
        lambda message: message.startswith("web: 3/5 Ready; 2 not created: pods "),
    )
    assert condition["status"] == "False"
    assert condition["message"].startswith("web: 3/5 Ready; 2 not created: pods ")
    assert "exceeded quota: floor-quota" in condition["message"]
    entry = target_entry(cluster)
    assert (entry["pendingReplicas"], entry["notReadyReason"]) == (2, "QuotaExceeded")
    warnings = cluster.k8s_events(reason="QuotaExceeded", kind="CampaignEvent")
    assert len(warnings) == 1 and "exceeded quota" in warnings[0].message
