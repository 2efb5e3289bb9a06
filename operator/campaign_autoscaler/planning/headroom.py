"""Node headroom: the placeholder pods an event keeps so that nodes exist before its pre-scale.

From `start - leadTime - nodeHeadroom.leadTime` until the window ends, each target that is not yet Ready at
its floor gets `floor - current replicas` placeholder pods, each requesting what one of its pods requests:
room for exactly the pods the ramp-up will add. The scheduler preempts a placeholder (lowest priority) for
each real pod that needs its room, and as the ramp raises the replicas fewer placeholders are wanted, so a
preempted one is not made again. The operator itself removes a placeholder only once a real pod is Ready in
its stead (up to `floor - ready replicas` are kept): were it to delete the surplus as it raises the replicas,
the new pods would race its deletes to the scheduler, which would then preempt other placeholders as well
and leave fewer than wanted (made again at once). A target whose pod template requests nothing is skipped
(nothing to hold).

`placeholder_changes` turns the wanted sets and the placeholders that exist into the pods to create and to
delete; names are fixed per (event uid, target, index), so a create repeated on a lagging watch is refused
as a duplicate by the API server instead of making a second pod.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from .spec import CampaignSpec
from .timeline import next_transition
from .windows import Window, lifecycle_start

DEFAULT_PLACEHOLDER_IMAGE = "registry.k8s.io/pause:3.9"
DEFAULT_PRIORITY_CLASS = "campaign-autoscaler-headroom"  # the chart installs it, at -10
_NAME_PART = 20  # characters of the event's and of the target's name in a placeholder's name
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class HeadroomTarget:
    """One target as the headroom decision reads it."""

    deployment: str
    floor: int  # the replicas the window needs
    replicas: int  # its replicas now
    ready_replicas: int
    requests: Mapping[str, Decimal] = field(default_factory=dict)  # what one pod requests; empty: nothing


@dataclass(frozen=True)
class PlaceholderSet:
    """The placeholders one target wants: `count` pods, each requesting `requests`; of those there are, up to
    `keep` (at least `count`) stay, the rest being the scheduler's to preempt for pods not Ready yet."""

    deployment: str
    count: int
    requests: Mapping[str, Decimal]
    keep: int


@dataclass(frozen=True)
class HeadroomPlan:
    active: bool  # within [headroom start, window end)
    sets: tuple[PlaceholderSet, ...] = ()
    without_requests: tuple[str, ...] = ()  # targets skipped: their pods request nothing

    def total(self) -> dict[str, Decimal]:
        """What every placeholder together requests, per resource."""
        return sum_requests(
            {name: quantity * placeholder.count for name, quantity in placeholder.requests.items()}
            for placeholder in self.sets
        )


def sum_requests(requests: Iterable[Mapping[str, Decimal]]) -> dict[str, Decimal]:
    """Requests added up per resource."""
    total: dict[str, Decimal] = {}
    for each in requests:
        for name, quantity in each.items():
            total[name] = total.get(name, Decimal(0)) + quantity
    return total


def headroom_start(spec: CampaignSpec, window: Window) -> datetime | None:
    """When the placeholders of `window` are first wanted; None without nodeHeadroom."""
    if spec.node_headroom is None:
        return None
    return lifecycle_start(spec, window) - spec.node_headroom.lead_time


def next_change(spec: CampaignSpec, window: Window, now: datetime) -> datetime | None:
    """When the operator acts next: the next transition, or the headroom's start when that comes first."""
    upcoming = next_transition(spec, window, now)
    begin = headroom_start(spec, window)
    if begin is not None and begin > now and (upcoming is None or begin < upcoming):
        return begin
    return upcoming


def plan_headroom(
    spec: CampaignSpec, window: Window, now: datetime, targets: Sequence[HeadroomTarget]
) -> HeadroomPlan:
    """The placeholders wanted at `now`: none outside `[headroom start, window end)`. Once the ramp-up has
    raised a target to its floor it wants none either: the window's own pods hold the nodes then. Those there
    are stay while pods the ramp asked for are not Ready, unless the floor is Ready."""
    begin = headroom_start(spec, window)
    if begin is None or not begin <= now < window.end:
        return HeadroomPlan(active=False)
    sets, without = [], []
    for target in targets:
        if not target.requests:
            without.append(target.deployment)
            continue
        unready = max(0, target.floor - target.ready_replicas)
        missing = min(unready, max(0, target.floor - target.replicas))
        sets.append(PlaceholderSet(target.deployment, missing, dict(target.requests), keep=unready))
    return HeadroomPlan(active=True, sets=tuple(sets), without_requests=tuple(without))


# --- what to create and delete ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExistingPlaceholder:
    """A placeholder pod of the event as the watch shows it."""

    name: str
    deployment: str
    index: int
    requests: Mapping[str, Decimal]
    terminating: bool = False


@dataclass(frozen=True)
class NewPlaceholder:
    name: str
    deployment: str
    index: int
    requests: Mapping[str, Decimal]


@dataclass(frozen=True)
class PlaceholderChanges:
    create: tuple[NewPlaceholder, ...] = ()
    delete: tuple[ExistingPlaceholder, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.create and not self.delete


def placeholder_name(event_name: str, event_uid: str, deployment: str, index: int) -> str:
    """A pod name fixed per (event, target, index), at most 63 characters (a valid hostname too)."""
    digest = hashlib.sha256(f"{event_uid}/{deployment}".encode()).hexdigest()[:8]
    parts = [_NOT_NAME.sub("-", part[:_NAME_PART]).strip("-") for part in (event_name, deployment)]
    return "-".join([*(part for part in parts if part), digest, str(index)])


def placeholder_changes(
    event_name: str, event_uid: str, plan: HeadroomPlan, existing: Sequence[ExistingPlaceholder]
) -> PlaceholderChanges:
    """The pods to create and delete so that each target has its wanted set and nothing else is left.

    A placeholder that requests something else than its target's pods now (the template changed) is
    replaced; of more than a set keeps, the highest indexes go; a terminating one (preempted) counts as gone,
    and its name is not taken again while it is there.
    """
    wanted = {placeholder.deployment: placeholder for placeholder in plan.sets if placeholder.keep > 0}
    create: list[NewPlaceholder] = []
    delete: list[ExistingPlaceholder] = []
    by_target: dict[str, list[ExistingPlaceholder]] = {}
    for pod in existing:
        by_target.setdefault(pod.deployment, []).append(pod)
    for deployment in sorted(set(by_target) | set(wanted)):
        pods = sorted(by_target.get(deployment, []), key=lambda pod: pod.index)
        target = wanted.get(deployment)
        live = [pod for pod in pods if not pod.terminating]
        if target is None:
            delete += live
            continue
        fitting = [pod for pod in live if dict(pod.requests) == dict(target.requests)]
        delete += [pod for pod in live if pod not in fitting]
        delete += fitting[target.keep :]
        taken = {pod.index for pod in pods}
        index = 0
        for _ in range(target.count - len(fitting[: target.count])):
            while index in taken:
                index += 1
            taken.add(index)
            name = placeholder_name(event_name, event_uid, deployment, index)
            create.append(NewPlaceholder(name, deployment, index, dict(target.requests)))
    return PlaceholderChanges(tuple(create), tuple(delete))
