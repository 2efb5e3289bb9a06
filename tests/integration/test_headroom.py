"""Node headroom against the real API server (no scheduler and no nodes: what placeholders are, when they
exist and that none outlives its event; their preemption by real pods needs the scheduler).

The PriorityClass is the one the chart ships (manifests/), created as `kubectl apply -f manifests/` would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from campaign_autoscaler.adapters.placeholders import (
    EVENT_ANNOTATION,
    EVENT_UID_LABEL,
    HEADROOM_LABEL,
    INDEX_ANNOTATION,
    PLACEHOLDER_SELECTOR,
    TARGET_ANNOTATION,
)
from campaign_autoscaler.devenv.controlplane import ControlPlane
from tests.integration.harness import (
    REPO,
    Cluster,
    OperatorProcess,
    campaign_spec,
    deployment_body,
    seconds_from_now,
    wait_until,
)
from tests.integration.test_install import denied_line, installed, local_args, rendered_operator_args

__all__ = ["installed"]  # the fixture, used below

RESYNC = "2s"
PRIORITY_CLASS = "campaign-autoscaler-headroom"
REQUESTS = {"cpu": "250m", "memory": "64Mi"}


@pytest.fixture(scope="session")
def headroom_priority_class(api_client: client.ApiClient) -> dict[str, Any]:
    """The chart's PriorityClass, from manifests/ (cluster-scoped: once per control plane)."""
    documents = yaml.safe_load_all((REPO / "manifests" / "campaign-autoscaler.yaml").read_text())
    (priority_class,) = [doc for doc in documents if doc and doc["kind"] == "PriorityClass"]
    try:
        client.SchedulingV1Api(api_client).create_priority_class(priority_class)
    except ApiException as err:
        if err.status != 409:
            raise
    return priority_class


@pytest.fixture
def operator(
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    campaignevent_crd: object,
    headroom_priority_class: object,
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        str(kubeconfig), tmp_path / "operator.log", ["--namespace", namespace, "--resync-interval", RESYNC]
    ).start()
    yield process
    code = process.stop()
    print(process.log()[-4000:])
    assert code == 0, f"Operator exited with {code} on SIGTERM"


def create_deployment(cluster: Cluster, name: str, replicas: int, requests: dict[str, str] | None) -> None:
    cluster.apps.create_namespaced_deployment(
        cluster.namespace, deployment_body(name, replicas, requests=requests)
    )


def placeholders(cluster: Cluster) -> list[client.V1Pod]:
    """The namespace's placeholder pods, not counting those on their way out."""
    pods = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=PLACEHOLDER_SELECTOR).items
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None]


def held_now(replicas: int) -> dict[str, Any]:
    """An event on checkout whose placeholders are wanted at once and for two minutes (headroom 5m, lead 10s,
    the window opening in two minutes)."""
    start = seconds_from_now(120)
    return campaign_spec(
        start=start,
        end=start + timedelta(minutes=1),
        targets=[{"name": "checkout", "replicas": replicas}],
        lead_time="10s",
        nodeHeadroom={"leadTime": "5m"},
    )


def count_over_time(cluster: Cluster, until: float, every: float = 0.2) -> list[tuple[float, int]]:
    """(wall time, placeholder count) at every change of the count until `until`."""
    seen: list[tuple[float, int]] = []
    while time.time() < until:
        count = len(placeholders(cluster))
        if not seen or seen[-1][1] != count:
            seen.append((time.time(), count))
        time.sleep(every)
    return seen


def count_at(seen: list[tuple[float, int]], moment: float) -> int:
    return [count for at, count in seen if at <= moment][-1]


def test_placeholders_hold_the_pre_scale_from_the_headroom_start_and_none_is_left_after_completed(
    cluster: Cluster, operator: OperatorProcess
):
    create_deployment(cluster, "checkout", 2, REQUESTS)
    create_deployment(cluster, "search", 1, None)  # requests nothing: skipped, with a Warning
    start = seconds_from_now(18)
    spec = campaign_spec(
        start=start,
        end=start + timedelta(seconds=3),
        targets=[{"name": "checkout", "replicas": 6}, {"name": "search", "replicas": 2}],
        lead_time="8s",
        ramp_up_steps=2,
        ramp_down={"duration": "2s", "steps": 1},
        nodeHeadroom={"leadTime": "6s"},
    )
    cluster.create_event("sale", spec)
    at = start.timestamp()
    headroom_start, first_step, second_step = at - 14, at - 8, at - 4
    seen = count_over_time(cluster, at + 1)

    # floor 6 - 2 replicas = 4 placeholders from start - 14 s; once the first step's pods (2 -> 4) are Ready
    # (2 s here) 2 are left, after the second's (4 -> 6) none: each real pod takes the room one placeholder
    # held (no scheduler preempts them here: the operator deletes one for each new pod Ready).
    assert seen[0][1] == 0
    appeared = next(moment for moment, count in seen if count > 0)
    assert headroom_start - 0.1 <= appeared <= headroom_start + 1.5, (seen, headroom_start)
    assert count_at(seen, first_step - 0.3) == 4, seen
    assert count_at(seen, second_step - 0.3) == 2, seen
    assert count_at(seen, at + 0.9) == 0, seen

    wait_until(lambda: cluster.phase("sale") == "Completed", timeout=15, message="Completed")
    assert placeholders(cluster) == []
    warnings = cluster.k8s_events(reason="HeadroomWithoutRequests")
    assert len(warnings) == 1 and "search" in warnings[0].message
    created = cluster.k8s_events(reason="NodeHeadroom")
    assert any("Created 4 placeholder pod(s) for Deployment" in event.message for event in created)


def test_a_placeholder_requests_what_a_target_pod_does_at_the_headroom_priority(
    cluster: Cluster, operator: OperatorProcess
):
    create_deployment(cluster, "checkout", 1, REQUESTS)
    cluster.create_event("sale", held_now(replicas=3))
    wait_until(lambda: len(placeholders(cluster)) == 2, timeout=10, message="2 placeholders")
    event = cluster.event("sale")
    assert event is not None
    for pod in placeholders(cluster):
        assert pod.spec.priority_class_name == PRIORITY_CLASS
        assert pod.spec.priority == -10  # resolved by the API server's Priority admission
        (container,) = pod.spec.containers
        assert container.image == "registry.k8s.io/pause:3.9"
        requests = {key: parse_quantity(value) for key, value in container.resources.requests.items()}
        assert requests == {key: parse_quantity(value) for key, value in REQUESTS.items()}
        assert pod.metadata.labels[HEADROOM_LABEL] == "true"
        assert pod.metadata.labels[EVENT_UID_LABEL] == event["metadata"]["uid"]
        assert pod.metadata.annotations[EVENT_ANNOTATION] == f"{cluster.namespace}/sale"
        assert pod.metadata.annotations[TARGET_ANNOTATION] == "checkout"
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("CampaignEvent", "sale", event["metadata"]["uid"])
    assert sorted(pod.metadata.annotations[INDEX_ANNOTATION] for pod in placeholders(cluster)) == ["0", "1"]

    cluster.delete_event("sale")  # while the placeholders hold their room: released at once
    wait_until(lambda: cluster.event("sale") is None, timeout=10, message="finalizer removed")
    assert placeholders(cluster) == []


def ghost_placeholder(cluster: Cluster) -> None:
    """A placeholder of an event that no longer exists and that nobody owns any more (its event deleted while
    the operator was down and the finalizer removed by hand, the garbage collector's owner link cut)."""
    cluster.core.create_namespaced_pod(
        cluster.namespace,
        {
            "metadata": {
                "name": "ghost-checkout-0",
                "labels": {HEADROOM_LABEL: "true", EVENT_UID_LABEL: "0e5b6c1a-0000-4000-8000-000000000000"},
                "annotations": {
                    EVENT_ANNOTATION: f"{cluster.namespace}/ghost",
                    TARGET_ANNOTATION: "checkout",
                    INDEX_ANNOTATION: "0",
                },
            },
            "spec": {
                "priorityClassName": PRIORITY_CLASS,
                "containers": [{"name": "headroom", "image": "registry.k8s.io/pause:3.9"}],
            },
        },
    )


def test_no_placeholder_outlives_a_sigkill_the_deletion_meanwhile_or_a_ghost_event(
    kubeconfig: str, cluster: Cluster, tmp_path: Path, headroom_priority_class: object
):
    create_deployment(cluster, "checkout", 1, REQUESTS)
    args = ["--namespace", cluster.namespace, "--resync-interval", RESYNC]
    first = OperatorProcess(kubeconfig, tmp_path / "first.log", args).start()
    spec = held_now(replicas=4)
    cluster.create_event("sale", spec)
    cluster.create_event("other", {**spec, "targets": [{"name": "checkout", "replicas": 2}]})
    try:
        wait_until(lambda: len(placeholders(cluster)) == 3 + 1, timeout=15, message="placeholders")
        names = sorted(pod.metadata.name for pod in placeholders(cluster))
    finally:
        first.kill()
    cluster.delete_event("sale")  # the finalizer waits for an operator
    ghost_placeholder(cluster)
    second = OperatorProcess(kubeconfig, tmp_path / "second.log", args).start()
    try:
        wait_until(lambda: cluster.event("sale") is None, timeout=20, message="sale released after restart")
        wait_until(lambda: len(placeholders(cluster)) == 1, timeout=10, message="only other's placeholder")
        # The event still there keeps exactly its placeholder, the same pod: nothing made twice on restart.
        (kept,) = placeholders(cluster)
        assert kept.metadata.name in names
        assert kept.metadata.annotations[EVENT_ANNOTATION] == f"{cluster.namespace}/other"
    finally:
        assert second.stop() == 0
        print(second.log()[-3000:])
    assert "Deleted the orphan placeholder pod" in second.log()


def test_a_quota_that_refuses_placeholders_is_a_warning_not_a_failed_pass(
    cluster: Cluster, operator: OperatorProcess
):
    cluster.core.create_namespaced_resource_quota(
        cluster.namespace, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}}}
    )
    create_deployment(cluster, "checkout", 1, REQUESTS)

    def quota_counts_checkout() -> bool:
        used = cluster.core.read_namespaced_resource_quota("pods", cluster.namespace).status.used or {}
        return used.get("pods") == "1"

    wait_until(quota_counts_checkout, timeout=30, message="the quota controller counting checkout's pod")
    cluster.create_event("sale", held_now(replicas=5))
    wait_until(
        lambda: cluster.k8s_events(reason="HeadroomQuotaExceeded"), timeout=15, message="quota Warning"
    )
    assert len(placeholders(cluster)) == 1  # the quota's room: 2 pods, one of them checkout's
    (warning,) = cluster.k8s_events(reason="HeadroomQuotaExceeded")
    assert "exceeded quota" in warning.message
    # The pass went on: its status is written, and its target is held as before.
    wait_until(lambda: cluster.phase("sale") == "Pending", timeout=5, message="status written")
    assert cluster.status("sale")["targets"][0]["name"] == "checkout"


def test_the_rendered_rbac_is_enough_for_placeholders(
    installed: None, control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, tmp_path: Path
):
    cluster = Cluster(api_client, namespace)
    create_deployment(cluster, "checkout", 1, REQUESTS)
    operator = OperatorProcess(
        str(control_plane.restricted_kubeconfig_path),
        tmp_path / "op.log",
        local_args(rendered_operator_args()),
    ).start()
    try:
        start = seconds_from_now(8)
        cluster.create_event(
            "sale",
            campaign_spec(
                start=start,
                end=start + timedelta(seconds=2),
                lead_time="2s",
                ramp_up_steps=1,
                ramp_down={"duration": "1s", "steps": 1},
                targets=[{"name": "checkout", "replicas": 3}],
                nodeHeadroom={"leadTime": "30s"},
            ),
        )
        wait_until(lambda: len(placeholders(cluster)) == 2, timeout=15, message="2 placeholders")
        wait_until(lambda: cluster.phase("sale") == "Completed", timeout=20, message="Completed")
        assert placeholders(cluster) == []
        cluster.delete_event("sale")
        wait_until(lambda: cluster.event("sale") is None, timeout=10, message="finalizer removed")
    finally:
        assert operator.stop() == 0
    log = operator.log()
    denied = [line for line in log.splitlines() if denied_line(line)]
    assert not denied, "the rendered RBAC must grant all the operator does:\n" + "\n".join(denied[:10])
