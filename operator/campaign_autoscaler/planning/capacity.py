"""Why a target's capacity is missing: the judgement over its replicas and what its Pods' status says.

Pure: the adapters turn Pods and the Deployment's `ReplicaFailure` condition into the values below; the pass
and anything else that wants the answer call `judge_capacity`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class NotReadyReason(StrEnum):
    """Why replicas asked for are not Ready, most blocking first: the first that holds any replica back
    names the target's `notReadyReason`."""

    QUOTA_EXCEEDED = "QuotaExceeded"  # a ResourceQuota refused to admit the Pods
    FAILED_CREATE = "FailedCreate"  # the Pods could not be created for another reason (an admission webhook)
    UNSCHEDULABLE = "Unschedulable"  # created, but no Node has room (the scheduler's message says why)
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    STARTING = "Starting"  # on their way: being created, scheduled, pulled or started, not yet Ready


# Container waiting reasons that mean the image cannot be had (the kubelet backs off between them).
IMAGE_PULL_FAILURES = frozenset({"ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName"})
CRASH_LOOP = "CrashLoopBackOff"
QUOTA_REFUSAL = "exceeded quota"  # what the ResourceQuota admission says, in every refusal it makes


@dataclass(frozen=True)
class PodState:
    """One Pod of a target that is not Ready, as its status tells it."""

    name: str
    bound: bool = False  # the scheduler placed it on a Node
    unschedulable: str | None = None  # PodScheduled=False/Unschedulable: the scheduler's message
    waiting: tuple[tuple[str, str], ...] = ()  # (reason, message) of each container that is waiting


@dataclass(frozen=True)
class CreationFailure:
    """The controller could not create the target's Pods (its ReplicaSet's `ReplicaFailure` condition)."""

    reason: str  # FailedCreate, FailedDelete
    message: str  # e.g. 'pods "web-7d9-x" is forbidden: exceeded quota: shop-quota, requested: ...'

    @property
    def cause(self) -> NotReadyReason:
        return (
            NotReadyReason.QUOTA_EXCEEDED if QUOTA_REFUSAL in self.message else NotReadyReason.FAILED_CREATE
        )


@dataclass(frozen=True)
class CapacityVerdict:
    pending: int  # replicas asked for and not Ready
    reason: NotReadyReason | None  # None when nothing is pending
    message: str  # "" when nothing is pending
    unready: Mapping[NotReadyReason, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def short(self) -> bool:
        return self.pending > 0


READY = CapacityVerdict(0, None, "")


def pod_cause(pod: PodState) -> tuple[NotReadyReason, str]:
    """What holds one Pod back, with the detail its status gives (the scheduler's or the kubelet's)."""
    if not pod.bound:
        if pod.unschedulable is not None:
            return NotReadyReason.UNSCHEDULABLE, pod.unschedulable
        return NotReadyReason.STARTING, "not yet scheduled"
    for reason, message in pod.waiting:
        if reason in IMAGE_PULL_FAILURES:
            return NotReadyReason.IMAGE_PULL_BACK_OFF, message or reason
    for reason, message in pod.waiting:
        if reason == CRASH_LOOP:
            return NotReadyReason.CRASH_LOOP_BACK_OFF, message or reason
    return NotReadyReason.STARTING, "starting"


def judge_capacity(
    desired: int,
    ready: int,
    pods: Sequence[PodState] | None,
    failure: CreationFailure | None = None,
) -> CapacityVerdict:
    """Why `desired - ready` replicas are not Ready. `pods` are the target's Pods that are not Ready (None
    when they are not known yet); replicas without a Pod are blamed on `failure` when there is one, else
    they are still being created."""
    pending = max(0, desired - ready)
    if pending == 0:
        return READY
    known = list(pods or ())
    causes = [pod_cause(pod) for pod in known]
    counts: Counter[NotReadyReason] = Counter(reason for reason, _ in causes)
    # Replicas without a Pod (all of them while the Pods are not known yet).
    not_created = max(0, pending - len(known))
    if not_created:
        counts[failure.cause if failure is not None else NotReadyReason.STARTING] += not_created
    details = {
        reason: _most_common(detail for cause, detail in causes if cause == reason) for reason in counts
    }
    if failure is not None and failure.cause in counts:
        details[failure.cause] = failure.message
    ordered = [reason for reason in NotReadyReason if counts[reason]]
    parts = [_describe(reason, counts[reason], details.get(reason, "")) for reason in ordered]
    message = f"{ready}/{desired} Ready; " + "; ".join(parts)
    return CapacityVerdict(pending, ordered[0], message, MappingProxyType(dict(counts)))


def _most_common(details: Iterable[str]) -> str:
    counted = Counter(details)
    return counted.most_common(1)[0][0] if counted else ""


def _describe(reason: NotReadyReason, count: int, detail: str) -> str:
    if reason in (NotReadyReason.QUOTA_EXCEEDED, NotReadyReason.FAILED_CREATE):
        return f"{count} not created: {detail}"
    if reason == NotReadyReason.UNSCHEDULABLE:
        return f"{count} unschedulable: {detail}"
    if reason == NotReadyReason.IMAGE_PULL_BACK_OFF:
        return f"{count} cannot pull their image: {detail}"
    if reason == NotReadyReason.CRASH_LOOP_BACK_OFF:
        return f"{count} crash-looping: {detail}"
    return f"{count} starting"
