"""Node headroom against the real kube-scheduler: on Nodes with room for the baseline and the placeholders and
nothing more, the placeholders hold the room of the pre-scale and the scheduler preempts them for the real
pods at each ramp-up step (real pods have the default priority 0, placeholders the chart's PriorityClass at
-10, created from manifests/ as the chart renders it); none is made again and the floor is Ready at the
window's start.

The operator runs as its ServiceAccount with the ClusterRole of manifests/ (test_capacity.py's fixtures).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from campaign_autoscaler.adapters.placeholders import PLACEHOLDER_SELECTOR
from campaign_autoscaler.devenv.controlplane import ControlPlane, SchedulingWorld
from campaign_autoscaler.devenv.nodes import NodeShape
from tests.integration.harness import Cluster, OperatorProcess, campaign_spec, seconds_from_now, wait_until
from tests.integration.test_capacity import admin, cluster, operator, operator_ready_plane, requesting

__all__ = ["admin", "cluster", "operator"]  # the fixtures, used below

# Two pods of 500m a Node: the baseline (2) and the placeholders (6 - 2) fill the three Nodes exactly.
SHAPE = NodeShape(cpu="1", memory="4Gi", pods=20)
NODES = 3
POD_CPU = "500m"
BASELINE, FLOOR = 2, 6


@pytest.fixture(scope="module")
def scheduling_plane() -> Iterator[ControlPlane]:
    with operator_ready_plane(SchedulingWorld(nodes=NODES, shape=SHAPE)) as plane:
        yield plane


@dataclass(frozen=True)
class Placeholder:
    uid: str
    name: str
    node: str
    terminating: bool


@dataclass(frozen=True)
class Moment:
    at: float  # time.time()
    placeholders: tuple[Placeholder, ...]
    ready: int  # the Deployment's ready replicas

    def live(self) -> list[Placeholder]:
        return [pod for pod in self.placeholders if not pod.terminating]


def placeholder_pods(cluster: Cluster) -> list[Any]:
    listing = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=PLACEHOLDER_SELECTOR)
    return list(listing.items)


def observe(cluster: Cluster, deployment: str, until: float, every: float = 0.1) -> list[Moment]:
    """The namespace's placeholders and the Deployment's ready replicas, every `every` seconds."""
    seen = []
    while time.time() < until:
        placeholders = tuple(
            Placeholder(
                pod.metadata.uid,
                pod.metadata.name,
                pod.spec.node_name or "",
                pod.metadata.deletion_timestamp is not None,
            )
            for pod in placeholder_pods(cluster)
        )
        seen.append(Moment(time.time(), placeholders, cluster.ready(deployment)))
        time.sleep(every)
    return seen


def last_before(seen: list[Moment], moment: float) -> Moment:
    return [each for each in seen if each.at < moment][-1]


def test_placeholders_are_preempted_by_real_pods(cluster: Cluster, operator: OperatorProcess) -> None:
    cluster.apps.create_namespaced_deployment(cluster.namespace, requesting("web", BASELINE, POD_CPU))
    wait_until(lambda: cluster.ready("web") == BASELINE, timeout=30, message="the baseline Ready")
    start = seconds_from_now(24)
    cluster.create_event(
        "sale",
        campaign_spec(
            start=start,
            end=start + timedelta(seconds=3),
            targets=[{"name": "web", "replicas": FLOOR}],
            lead_time="12s",
            ramp_up_steps=2,
            ramp_down={"duration": "2s", "steps": 1},
            nodeHeadroom={"leadTime": "8s"},
        ),
    )
    at = start.timestamp()
    headroom_start, first_step, second_step = at - 20, at - 12, at - 6
    seen = observe(cluster, "web", until=at + 1)

    # None before the headroom starts; then the four take the Nodes' last room, bound before the first step.
    assert [m for m in seen if m.at < headroom_start - 0.1 and m.placeholders] == []
    before = last_before(seen, first_step)
    assert len(before.live()) == FLOOR - BASELINE and all(pod.node for pod in before.live()), before
    # Each step (2 -> 4, 4 -> 6) preempts two of them for its pods, which are Ready before the next step.
    middle = last_before(seen, second_step)
    assert (len(middle.live()), middle.ready) == (2, 4), middle
    # The floor is Ready at the window's start, and no placeholder is left.
    opening = last_before(seen, at)
    assert (opening.live(), opening.ready) == ([], FLOOR), opening
    # None was made again: four placeholders in all, each gone by the scheduler's preemption for a web pod,
    # none deleted by the operator.
    made = {pod.uid: pod.name for moment in seen for pod in moment.placeholders}
    assert len(made) == FLOOR - BASELINE, made

    def preempted() -> dict[str, str]:
        return {e.involved_object.name: e.message for e in cluster.k8s_events(reason="Preempted")}

    wait_until(lambda: len(preempted()) == len(made), timeout=10, message="a Preempted Event for each")
    assert set(preempted()) == set(made.values())
    assert all(f"Preempted by {cluster.namespace}/web-" in message for message in preempted().values())
    deleted = [e.message for e in cluster.k8s_events(reason="NodeHeadroom") if "Deleted" in e.message]
    assert deleted == []

    wait_until(lambda: cluster.phase("sale") == "Completed", timeout=20, message="Completed")
    assert placeholder_pods(cluster) == []
