"""A stand-in for the cluster autoscaler: adds simulated Nodes for Pods the scheduler cannot place, and
removes the Nodes it added once they stay empty.

Every `scan_interval` it lists Nodes and Pods (the cluster autoscaler scans every 10 s by default). A Pod
the scheduler marked `PodScheduled=False/Unschedulable` for `unschedulable_after` seconds, and that would fit
on an empty Node of the configured shape, asks for room: the Pods waiting are packed (first fit, largest
first) onto as many new Nodes as they need, less those already on their way, and each new Node is registered
`provisioning_delay` seconds later (what a cloud takes to boot one: 45 s to 4 minutes in practice). A Pod
that would not fit even on an empty Node never asks for one, as with the real autoscaler. A Node it added
that has no Pod for `empty_after` seconds while no Pod waits for room is tainted `NoSchedule`, and deleted on
the next scan if it is still empty (untainted if a Pod landed on it meanwhile).
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.utils import parse_quantity

from campaign_autoscaler.devenv.nodes import NODE_GROUP_LABEL, NodeShape, create_node, set_taints

logger = logging.getLogger(__name__)

PROVISIONED_GROUP = "provisioned"
DELETION_TAINT = "ToBeDeletedByClusterAutoscaler"
REQUEST_TIMEOUT_SECONDS = 10
RESOURCES = ("cpu", "memory", "pods")


@dataclass(frozen=True)
class ProvisionerConfig:
    shape: NodeShape = field(default_factory=NodeShape)
    provisioning_delay: float = 60.0  # seconds from the decision to add a Node until it is Ready
    unschedulable_after: float = 3.0  # a Pod asks for a Node once it has been unschedulable this long
    empty_after: float = 30.0  # a Node it added is removed once it has had no Pod this long
    max_nodes: int = 20  # Nodes it may have added at once (on their way included)
    scan_interval: float = 1.0


Resources = dict[str, Decimal]


def pod_requests(pod: dict[str, Any]) -> Resources:
    """What the scheduler reserves for a Pod: its containers' requests (init containers aside), one Pod."""
    total: Resources = {"cpu": Decimal(0), "memory": Decimal(0), "pods": Decimal(1)}
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            if resource in requests:
                total[resource] += parse_quantity(requests[resource])
    return total


def shape_resources(shape: NodeShape) -> Resources:
    return {resource: parse_quantity(value) for resource, value in shape.allocatable().items()}


def fits(request: Resources, room: Resources) -> bool:
    return all(request[resource] <= room[resource] for resource in RESOURCES)


def nodes_needed(requests: list[Resources], shape: NodeShape, free: list[Resources] | None = None) -> int:
    """How many new Nodes of `shape` the requests take beyond the room `free` on the Nodes there are (the
    scheduler may not have tried a Pod again on a Node that just came), packed first fit, largest first
    (each must fit an empty Node on its own)."""
    rooms = [dict(room) for room in free or ()]
    added = 0
    for request in sorted(requests, key=lambda r: (r["cpu"], r["memory"]), reverse=True):
        room = next((room for room in rooms if fits(request, room)), None)
        if room is None:
            room = shape_resources(shape)
            rooms.append(room)
            added += 1
        for resource in RESOURCES:
            room[resource] -= request[resource]
    return added


def free_room(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> list[Resources]:
    """What is left on each Node the scheduler may use (no NoSchedule taint) after the Pods bound to it."""
    used: dict[str, list[Resources]] = {}
    for pod in pods:
        if (node := occupies_node(pod)) is not None:
            used.setdefault(node, []).append(pod_requests(pod))
    rooms = []
    for node in nodes:
        if any(taint.get("effect") == "NoSchedule" for taint in (node.get("spec") or {}).get("taints") or ()):
            continue
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        room = {resource: parse_quantity(allocatable.get(resource, "0")) for resource in RESOURCES}
        for request in used.get(node["metadata"]["name"], ()):
            for resource in RESOURCES:
                room[resource] -= request[resource]
        rooms.append(room)
    return rooms


def is_unschedulable(pod: dict[str, Any]) -> bool:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("nodeName") or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


def occupies_node(pod: dict[str, Any]) -> str | None:
    """The Node a Pod holds room on (bound and not finished), if any."""
    node = (pod.get("spec") or {}).get("nodeName")
    phase = (pod.get("status") or {}).get("phase")
    return node if node and phase not in ("Succeeded", "Failed") else None


class NodeProvisioner:
    """start() / stop(), or a `with`. `added` and `removed` count the Nodes it registered and deleted."""

    def __init__(self, kubeconfig_path: Path | str, config: ProvisionerConfig | None = None) -> None:
        self.kubeconfig_path = Path(kubeconfig_path)
        self.config = config or ProvisionerConfig()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._api_client: kubernetes.client.ApiClient | None = None
        self._waiting_since: dict[str, float] = {}  # Pod uid -> when it was first seen unschedulable
        self._on_the_way: list[float] = []  # when each Node decided on is due
        self._empty_since: dict[str, float] = {}
        self._tainted: set[str] = set()
        self._names = (f"provisioned-{secrets.token_hex(2)}-{n}" for n in itertools.count(1))
        self.added = 0
        self.removed = 0

    def start(self) -> NodeProvisioner:
        self._api_client = kubernetes.config.new_client_from_config(
            config_file=str(self.kubeconfig_path), persist_config=False
        )
        self._thread = threading.Thread(target=self._loop, name="node-provisioner", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_SECONDS * 3)
            self._thread = None
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    def __enter__(self) -> NodeProvisioner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.wait(self.config.scan_interval):
            try:
                self._scan(time.monotonic())
            except Exception as error:  # the API server restarting or gone; the next scan tries again
                if not self._stopping.is_set():
                    logger.warning("Node provisioner scan failed: %s", error)

    def _core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self._api_client)

    def _list(self, kind: str) -> list[dict[str, Any]]:
        core = self._core()
        lister = core.list_node if kind == "nodes" else core.list_pod_for_all_namespaces
        response = lister(_preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        return list(json.loads(response.data).get("items") or [])

    def _scan(self, now: float) -> None:
        self._register_due(now)
        nodes = self._list("nodes")
        provisioned = [
            node["metadata"]["name"]
            for node in nodes
            if (node["metadata"].get("labels") or {}).get(NODE_GROUP_LABEL) == PROVISIONED_GROUP
        ]
        pods = self._list("pods")
        waiting_for_room = self._scale_up(now, pods, free_room(nodes, pods), len(provisioned))
        if not waiting_for_room:  # a Node that just came is empty only until the scheduler tries it
            self._scale_down(now, pods, provisioned)

    def _register_due(self, now: float) -> None:
        due = sorted(at for at in self._on_the_way if at <= now)
        for at in due:
            name = next(self._names)
            create_node(self._core(), name, self.config.shape, PROVISIONED_GROUP)
            self._on_the_way.remove(at)
            self.added += 1
            logger.info("Added Node %s (%s)", name, self.config.shape.describe())
        if due:
            # The scheduler tries its Pods again on the new Nodes: a Pod asks for more only if it still
            # cannot be placed a while after that.
            self._waiting_since.clear()

    def _scale_up(
        self, now: float, pods: list[dict[str, Any]], free: list[Resources], provisioned: int
    ) -> bool:
        """Decide the Nodes to add; True when Pods that a Node of the shape would take are waiting."""
        room = shape_resources(self.config.shape)
        waiting = {
            pod["metadata"]["uid"]: request
            for pod in pods
            if is_unschedulable(pod) and fits(request := pod_requests(pod), room)
        }
        self._waiting_since = {uid: self._waiting_since.get(uid, now) for uid in waiting}
        asking = [
            request
            for uid, request in waiting.items()
            if now - self._waiting_since[uid] >= self.config.unschedulable_after
        ]
        if not asking:
            return bool(waiting)
        wanted = nodes_needed(asking, self.config.shape, free) - len(self._on_the_way)
        allowed = self.config.max_nodes - len(self._on_the_way) - provisioned
        for _ in range(max(0, min(wanted, allowed))):
            self._on_the_way.append(now + self.config.provisioning_delay)
            logger.info(
                "Provisioning a Node for %d unschedulable Pod(s); Ready in %.0f s",
                len(asking),
                self.config.provisioning_delay,
            )
        return True

    def _scale_down(self, now: float, pods: list[dict[str, Any]], nodes: list[str]) -> None:
        occupied = {node for pod in pods if (node := occupies_node(pod))}
        self._empty_since = {name: self._empty_since.get(name, now) for name in nodes if name not in occupied}
        for name in nodes:
            if name in occupied and name in self._tainted:
                set_taints(self._core(), name, [])  # a Pod landed before it went: keep it
                self._tainted.discard(name)
        for name, since in sorted(self._empty_since.items()):
            if now - since < self.config.empty_after:
                continue
            if name not in self._tainted:
                set_taints(self._core(), name, [{"key": DELETION_TAINT, "effect": "NoSchedule"}])
                self._tainted.add(name)
                continue
            self._core().delete_node(name, _request_timeout=REQUEST_TIMEOUT_SECONDS)
            self._tainted.discard(name)
            del self._empty_since[name]
            self.removed += 1
            logger.info("Removed Node %s: empty for %.0f s", name, now - since)
