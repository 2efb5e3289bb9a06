"""The scheduling world of the test environment: the real kube-scheduler on simulated Nodes, only bound Pods
turn Ready, a Pod that fits nowhere stays Pending with the scheduler's condition, and the node provisioner
adds a Node after its delay for it, and removes the Node once it stays empty."""

from __future__ import annotations

import time
from collections.abc import Iterator

import kubernetes
import pytest

from campaign_autoscaler.devenv.controlplane import (
    MISSING_ASSETS_HELP,
    SCHEDULER_BINARY,
    ControlPlane,
    SchedulingWorld,
    find_assets,
)
from campaign_autoscaler.devenv.nodes import SIMULATED_LABEL, NodeShape
from campaign_autoscaler.devenv.provisioner import ProvisionerConfig
from tests.integration.conftest import require
from tests.integration.harness import deployment_body, wait_until

SHAPE = NodeShape(cpu="1", memory="2Gi", pods=10)
PROVISIONING_DELAY = 3.0


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    assets = find_assets()
    require(assets is not None and (assets / SCHEDULER_BINARY).is_file(), MISSING_ASSETS_HELP)
    provisioner = ProvisionerConfig(
        shape=SHAPE, provisioning_delay=PROVISIONING_DELAY, unschedulable_after=1.0, empty_after=3.0
    )
    world = SchedulingWorld(nodes=1, shape=SHAPE, provisioner=provisioner)
    with ControlPlane(assets, scheduling=world, pod_ready_after=0.5) as started:
        yield started


def test_a_pod_without_room_waits_pending_for_a_provisioned_node_which_goes_once_empty(plane: ControlPlane):
    with kubernetes.config.new_client_from_config(
        config_file=str(plane.kubeconfig_path), persist_config=False
    ) as api_client:
        core, apps = kubernetes.client.CoreV1Api(api_client), kubernetes.client.AppsV1Api(api_client)

        def nodes() -> list[str]:
            listing = core.list_node(label_selector=f"{SIMULATED_LABEL}=true")
            return [node.metadata.name for node in listing.items]

        assert nodes() == ["node-1"]
        body = deployment_body("web", 2)
        body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "600m"}}
        apps.create_namespaced_deployment("default", body)

        def pods() -> list[kubernetes.client.V1Pod]:
            return core.list_namespaced_pod("default", label_selector="app=web").items

        def unscheduled() -> list[kubernetes.client.V1Pod]:
            return [pod for pod in pods() if not pod.spec.node_name]

        wait_until(lambda: len(pods()) == 2 and len(unscheduled()) == 1, timeout=20, message="one Pod placed")
        wait_until(
            lambda: any(
                c.type == "PodScheduled" and c.reason == "Unschedulable"
                for c in unscheduled()[0].status.conditions or ()
            ),
            timeout=20,
            message="the scheduler's verdict",
        )
        seen_unschedulable = time.monotonic()
        waiting = unscheduled()[0]
        verdict = next(c for c in waiting.status.conditions if c.type == "PodScheduled")
        assert verdict.status == "False"
        assert verdict.message == "0/1 nodes are available: 1 Insufficient cpu."
        assert not any(c.type == "Ready" and c.status == "True" for c in waiting.status.conditions)

        wait_until(lambda: len(nodes()) == 2, timeout=30, message="a provisioned Node")
        assert time.monotonic() - seen_unschedulable >= PROVISIONING_DELAY
        wait_until(
            lambda: apps.read_namespaced_deployment("web", "default").status.ready_replicas == 2,
            timeout=30,
            message="both Pods Ready on two Nodes",
        )
        assert len({pod.spec.node_name for pod in pods()}) == 2

        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
        wait_until(lambda: pods() == [], timeout=30, message="the Pods deleted for good (no kubelet)")
        wait_until(lambda: nodes() == ["node-1"], timeout=30, message="the empty provisioned Node removed")
        assert plane.provisioner is not None
        assert (plane.provisioner.added, plane.provisioner.removed) == (1, 1)
