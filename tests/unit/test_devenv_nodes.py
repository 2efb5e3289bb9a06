"""The scheduling world's pure parts: what a simulated Node offers, how the node provisioner counts the
room Pods ask for, and which Pods the Pod simulator makes Ready or deletes for good."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from campaign_autoscaler.devenv.nodes import NodeShape, node_manifest
from campaign_autoscaler.devenv.podsim import awaits_kubelet_deletion, needs_readiness
from campaign_autoscaler.devenv.provisioner import (
    free_room,
    is_unschedulable,
    nodes_needed,
    occupies_node,
    pod_requests,
)

SHAPE = NodeShape(cpu="2", memory="4Gi", pods=3)


def pod(cpu: str | None = None, *, node: str | None = None, **status: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "app:1"}
    if cpu is not None:
        container["resources"] = {"requests": {"cpu": cpu, "memory": "256Mi"}}
    spec: dict[str, Any] = {"containers": [container]}
    if node is not None:
        spec["nodeName"] = node
    return {"metadata": {"name": "p", "uid": "u"}, "spec": spec, "status": {"phase": "Pending", **status}}


UNSCHEDULABLE = {
    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2"}]
}


def test_a_node_offers_its_shape_and_says_it_is_ready() -> None:
    node = node_manifest("node-1", SHAPE, "initial")
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi", "pods": "3"}
    assert node["status"]["capacity"] == node["status"]["allocatable"]
    assert [(c["type"], c["status"]) for c in node["status"]["conditions"]] == [("Ready", "True")]


def test_requests_add_up_and_count_one_pod() -> None:
    assert pod_requests(pod("1500m")) == {
        "cpu": Decimal("1.5"),
        "memory": Decimal(256 * 1024 * 1024),
        "pods": Decimal(1),
    }
    assert pod_requests(pod()) == {"cpu": Decimal(0), "memory": Decimal(0), "pods": Decimal(1)}


def test_pods_are_packed_onto_as_few_new_nodes_as_they_need() -> None:
    assert nodes_needed([pod_requests(pod("1500m")) for _ in range(3)], SHAPE) == 3
    assert nodes_needed([pod_requests(pod("500m")) for _ in range(4)], SHAPE) == 2  # 3 Pods a Node
    assert (
        nodes_needed([pod_requests(pod("1500m")), *(pod_requests(pod("500m")) for _ in range(2))], SHAPE) == 2
    )


def test_only_a_pod_the_scheduler_refused_asks_for_a_node() -> None:
    assert is_unschedulable(pod(**UNSCHEDULABLE))
    assert not is_unschedulable(pod())  # not tried yet
    assert not is_unschedulable(pod(node="node-1", **UNSCHEDULABLE))


def test_a_bound_pod_holds_room_until_it_finishes() -> None:
    assert occupies_node(pod(node="node-1")) == "node-1"
    assert occupies_node(pod(node="node-1", phase="Succeeded")) is None
    assert occupies_node(pod()) is None


def test_with_a_scheduler_only_bound_pods_are_made_ready() -> None:
    assert needs_readiness(pod()) and not needs_readiness(pod(), bound_only=True)
    assert needs_readiness(pod(node="node-1"), bound_only=True)


def test_a_deleted_pod_on_a_node_waits_for_its_kubelet() -> None:
    deleting = pod(node="node-1")
    deleting["metadata"]["deletionTimestamp"] = "2026-09-09T00:00:00Z"
    assert awaits_kubelet_deletion(deleting)
    unbound = pod()
    unbound["metadata"]["deletionTimestamp"] = "2026-09-09T00:00:00Z"
    assert not awaits_kubelet_deletion(unbound)


def test_room_left_on_the_nodes_there_are_is_used_before_new_ones() -> None:
    node = {
        "metadata": {"name": "node-1"},
        "spec": {},
        "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3"}},
    }
    tainted = {
        **node,
        "metadata": {"name": "node-2"},
        "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]},
    }
    free = free_room([node, tainted], [pod("1500m", node="node-1")])
    assert free == [
        {"cpu": Decimal("0.5"), "memory": Decimal(4 * 1024**3 - 256 * 1024**2), "pods": Decimal(2)}
    ]
    assert nodes_needed([pod_requests(pod("500m"))], SHAPE, free) == 0  # fits beside the bound Pod
    assert nodes_needed([pod_requests(pod("1000m"))], SHAPE, free) == 1
