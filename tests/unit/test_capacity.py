"""Why capacity is missing: the pure judgement (planning.capacity), and how Pods and a Deployment's
ReplicaFailure condition are read into it (adapters.podcache, adapters.views)."""

from __future__ import annotations

from typing import Any

import pytest

from campaign_autoscaler.adapters.podcache import owning_deployment, pod_state
from campaign_autoscaler.adapters.views import deployment_view
from campaign_autoscaler.planning.capacity import (
    READY,
    CreationFailure,
    NotReadyReason,
    PodState,
    judge_capacity,
)

SCHEDULER_MESSAGE = "0/3 nodes are available: 3 Insufficient cpu."
QUOTA_MESSAGE = (
    'pods "web-5d8f7c9b4-x2x9k" is forbidden: exceeded quota: floor-quota, requested: pods=1, '
    "used: pods=4, limited: pods=4"
)


def unschedulable(name: str, message: str = SCHEDULER_MESSAGE) -> PodState:
    return PodState(name, bound=False, unschedulable=message)


def waiting(name: str, reason: str, message: str = "") -> PodState:
    return PodState(name, bound=True, waiting=((reason, message),))


# --- the judgement ----------------------------------------------------------------------------------------
def test_nothing_pending_is_ready() -> None:
    assert judge_capacity(10, 10, [unschedulable("a")]) == READY
    assert judge_capacity(4, 6, None) == READY  # more Ready than asked (an HPA above the floor)


def test_unschedulable_pods_carry_the_schedulers_message() -> None:
    verdict = judge_capacity(10, 7, [unschedulable("a"), unschedulable("b"), unschedulable("c")])
    assert verdict.pending == 3
    assert verdict.reason == NotReadyReason.UNSCHEDULABLE
    assert verdict.message == f"7/10 Ready; 3 unschedulable: {SCHEDULER_MESSAGE}"
    assert dict(verdict.unready) == {NotReadyReason.UNSCHEDULABLE: 3}


def test_the_most_blocking_cause_names_the_reason_and_every_cause_is_counted() -> None:
    pods = [
        unschedulable("a"),
        waiting("b", "ImagePullBackOff", 'Back-off pulling image "shop/web:nope"'),
        waiting("c", "CrashLoopBackOff", "back-off 40s restarting failed container=web"),
        PodState("d", bound=True),
    ]
    verdict = judge_capacity(10, 5, pods, CreationFailure("FailedCreate", QUOTA_MESSAGE))
    assert verdict.reason == NotReadyReason.QUOTA_EXCEEDED
    assert dict(verdict.unready) == {
        NotReadyReason.QUOTA_EXCEEDED: 1,  # 5 pending, 4 Pods: one was never created
        NotReadyReason.UNSCHEDULABLE: 1,
        NotReadyReason.IMAGE_PULL_BACK_OFF: 1,
        NotReadyReason.CRASH_LOOP_BACK_OFF: 1,
        NotReadyReason.STARTING: 1,
    }
    assert verdict.message == (
        f"5/10 Ready; 1 not created: {QUOTA_MESSAGE}; 1 unschedulable: {SCHEDULER_MESSAGE}; "
        '1 cannot pull their image: Back-off pulling image "shop/web:nope"; '
        "1 crash-looping: back-off 40s restarting failed container=web; 1 starting"
    )


def test_replicas_without_a_pod_are_blamed_on_the_quota_or_still_being_created() -> None:
    quota = judge_capacity(6, 4, [], CreationFailure("FailedCreate", QUOTA_MESSAGE))
    assert quota.reason == NotReadyReason.QUOTA_EXCEEDED
    assert quota.message == f"4/6 Ready; 2 not created: {QUOTA_MESSAGE}"
    webhook = judge_capacity(6, 4, [], CreationFailure("FailedCreate", 'admission webhook "x" denied it'))
    assert webhook.reason == NotReadyReason.FAILED_CREATE
    creating = judge_capacity(6, 4, [])
    assert (creating.reason, creating.message) == (NotReadyReason.STARTING, "4/6 Ready; 2 starting")


def test_pods_not_known_yet_say_starting() -> None:
    verdict = judge_capacity(6, 4, None, CreationFailure("FailedCreate", QUOTA_MESSAGE))
    assert verdict.reason == NotReadyReason.QUOTA_EXCEEDED  # the Deployment's condition is known
    assert judge_capacity(6, 4, None).reason == NotReadyReason.STARTING


def test_err_image_pull_counts_as_image_pull_back_off_and_the_commonest_message_is_shown() -> None:
    pods = [
        waiting("a", "ErrImagePull", "rpc error: not found"),
        waiting("b", "ImagePullBackOff", "Back-off pulling image"),
        waiting("c", "ImagePullBackOff", "Back-off pulling image"),
    ]
    verdict = judge_capacity(3, 0, pods)
    assert verdict.reason == NotReadyReason.IMAGE_PULL_BACK_OFF
    assert verdict.message == "0/3 Ready; 3 cannot pull their image: Back-off pulling image"


# --- reading Pods and Deployments -------------------------------------------------------------------------
def pod_body(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-5d8f7c9b4-x2x9k",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "web-5d8f7c9b4", "controller": True, "apiVersion": "apps/v1"}
            ],
        },
        "spec": {"containers": [{"name": "web", "image": "shop/web:1"}]},
        "status": {"phase": "Pending", **status},
    }


def test_a_pod_belongs_to_the_deployment_of_its_replicaset() -> None:
    assert owning_deployment(pod_body()) == "web"
    orphan = pod_body()
    orphan["metadata"]["ownerReferences"] = [{"kind": "StatefulSet", "name": "db", "controller": True}]
    assert owning_deployment(orphan) is None
    unrelated = pod_body()
    unrelated["metadata"]["labels"]["pod-template-hash"] = "other"
    assert owning_deployment(unrelated) is None


def test_an_unschedulable_pod_as_the_scheduler_leaves_it() -> None:
    body = pod_body(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": SCHEDULER_MESSAGE,
            }
        ]
    )
    assert pod_state(body) == PodState("web-5d8f7c9b4-x2x9k", bound=False, unschedulable=SCHEDULER_MESSAGE)


def test_a_bound_pod_with_a_waiting_container() -> None:
    body = pod_body(
        containerStatuses=[
            {
                "name": "web",
                "ready": False,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "m"}},
            }
        ]
    )
    body["spec"]["nodeName"] = "node-1"
    assert pod_state(body) == PodState(
        "web-5d8f7c9b4-x2x9k", bound=True, waiting=(("CrashLoopBackOff", "m"),)
    )


@pytest.mark.parametrize(
    "change",
    [
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"deletionTimestamp": "2026-09-09T00:00:00Z"}},
        {"status": {"phase": "Failed"}},
    ],
    ids=["ready", "deleting", "finished"],
)
def test_ready_deleting_and_finished_pods_are_not_kept(change: dict[str, Any]) -> None:
    body = pod_body()
    for part, fields in change.items():
        body[part].update(fields)
    assert pod_state(body) is None


def test_a_deployment_shows_the_replicaset_failure_it_copied() -> None:
    body = {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u"},
        "spec": {"replicas": 6},
        "status": {
            "readyReplicas": 4,
            "conditions": [
                {"type": "Available", "status": "True"},
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": QUOTA_MESSAGE,
                },
            ],
        },
    }
    failure = deployment_view(body).creation_failure
    assert failure == CreationFailure("FailedCreate", QUOTA_MESSAGE)
    assert failure.cause == NotReadyReason.QUOTA_EXCEEDED
    body["status"]["conditions"][1]["status"] = "False"
    assert deployment_view(body).creation_failure is None
