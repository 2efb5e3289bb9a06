"""Simulated Nodes for a control plane without kubelets: Node objects the scheduler can place Pods on.

A Node here is only its API object: allocatable cpu, memory and pods, and a Ready condition. There is no
kubelet to renew a Lease, so the control plane runs without the node-lifecycle controller (nothing marks a
silent Node NotReady or evicts its Pods): a simulated Node stays Ready until it is deleted. That controller
would also remove the `node.kubernetes.io/not-ready` taint the API server's TaintNodesByCondition admission
puts on every new Node; `create_node` removes it itself once the Node reports Ready, as the controller would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes

from campaign_autoscaler.planning.instants import kube_time

SIMULATED_LABEL = "campaign-autoscaler.dev/simulated-node"
NODE_GROUP_LABEL = "campaign-autoscaler.dev/node-group"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
REQUEST_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class NodeShape:
    """What one simulated Node offers the scheduler (its allocatable resources)."""

    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110

    def allocatable(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}

    def describe(self) -> str:
        return f"{self.cpu} CPU, {self.memory} memory, {self.pods} Pods"


def node_manifest(name: str, shape: NodeShape, group: str, now: datetime | None = None) -> dict[str, Any]:
    """A Node as a kubelet would register it, Ready, with `shape` allocatable."""
    stamp = kube_time(now or datetime.now(UTC))
    resources = shape.allocatable()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                SIMULATED_LABEL: "true",
                NODE_GROUP_LABEL: group,
            },
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "simulated node is posting ready status",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "addresses": [{"type": "Hostname", "address": name}],
        },
    }


def create_node(core: kubernetes.client.CoreV1Api, name: str, shape: NodeShape, group: str) -> None:
    """Register a Ready Node and clear the not-ready taint the API server's admission put on it."""
    core.create_node(node_manifest(name, shape, group), _request_timeout=REQUEST_TIMEOUT_SECONDS)
    node = core.read_node(name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    taints = (json.loads(node.data).get("spec") or {}).get("taints") or []
    kept = [taint for taint in taints if taint.get("key") != NOT_READY_TAINT]
    if len(kept) != len(taints):
        set_taints(core, name, kept)


def set_taints(core: kubernetes.client.CoreV1Api, name: str, taints: list[Mapping[str, Any]]) -> None:
    core.patch_node(
        name,
        {"spec": {"taints": list(taints) or None}},
        _request_timeout=REQUEST_TIMEOUT_SECONDS,
    )


def node_names(core: kubernetes.client.CoreV1Api, group: str | None = None) -> list[str]:
    """The simulated Nodes (of one group, when given), by name."""
    selector = f"{NODE_GROUP_LABEL}={group}" if group else f"{SIMULATED_LABEL}=true"
    response = core.list_node(
        label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS
    )
    return sorted(item["metadata"]["name"] for item in json.loads(response.data).get("items") or [])
