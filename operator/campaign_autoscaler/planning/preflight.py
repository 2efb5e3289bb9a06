"""Preflight: is the capacity an event's floors need really there, in the namespace's ResourceQuotas and on
the cluster's nodes? Pure: what was read from the cluster comes in, rows and a plain verdict go out.

What the floors need is, per target, `floor - baseline` more pods, each requesting what one pod of its
template requests. The nodes have `allocatable - requested` free (Ready, schedulable nodes; requests of the
pods bound to them). A quota has `hard - used` free, per resource it limits (`pods`, `requests.cpu` or `cpu`,
`limits.memory`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from .durations import format_duration
from .headroom import sum_requests
from .spec import CampaignSpec
from .windows import Window, lifecycle_start

PODS = "pods"
ZERO = Decimal(0)


@dataclass(frozen=True)
class WorkloadNeed:
    """One target Deployment: how many pods the floor adds, and what one of them requests."""

    label: str
    extra_pods: int
    requests: Mapping[str, Decimal] = field(default_factory=dict)
    limits: Mapping[str, Decimal] = field(default_factory=dict)

    def total(self, kind: str = "requests") -> dict[str, Decimal]:
        per_pod = self.requests if kind == "requests" else self.limits
        return {name: quantity * self.extra_pods for name, quantity in per_pod.items()}


@dataclass(frozen=True)
class NodeFacts:
    name: str
    allocatable: Mapping[str, Decimal]
    usable: bool = True  # Ready and schedulable


@dataclass(frozen=True)
class QuotaFacts:
    name: str
    hard: Mapping[str, Decimal]
    used: Mapping[str, Decimal]


@dataclass(frozen=True)
class ClusterCapacity:
    """What was read: the nodes, what the pods bound to the usable ones request (`pods`: how many), and the
    namespace's ResourceQuotas."""

    nodes: tuple[NodeFacts, ...]
    requested: Mapping[str, Decimal]
    quotas: tuple[QuotaFacts, ...] = ()


@dataclass(frozen=True)
class ResourceRow:
    resource: str
    needed: Decimal
    allocatable: Decimal
    requested: Decimal

    @property
    def free(self) -> Decimal:
        return max(ZERO, self.allocatable - self.requested)

    @property
    def short(self) -> Decimal:
        return max(ZERO, self.needed - self.free)


@dataclass(frozen=True)
class QuotaRow:
    quota: str
    resource: str
    hard: Decimal
    used: Decimal
    needed: Decimal

    @property
    def free(self) -> Decimal:
        return max(ZERO, self.hard - self.used)

    @property
    def short(self) -> Decimal:
        return max(ZERO, self.needed - self.free)


@dataclass(frozen=True)
class Preflight:
    resources: tuple[ResourceRow, ...]
    quotas: tuple[QuotaRow, ...]
    verdicts: tuple[str, ...]  # one plain sentence per problem, or one that says all is well
    ok: bool


def quota_need(resource: str, needs: Sequence[WorkloadNeed]) -> Decimal | None:
    """What the floors add to a quota's resource; None for a resource it does not grow (services, ...)."""
    if resource in (PODS, "count/pods"):
        return Decimal(sum(need.extra_pods for need in needs))
    kind, _, name = resource.partition(".")
    if kind not in ("requests", "limits") or not name:
        kind, name = "requests", resource
        if name not in ("cpu", "memory", "ephemeral-storage"):
            return None
    return sum_requests(need.total(kind) for need in needs).get(name, ZERO)


def preflight(
    spec: CampaignSpec,
    window: Window,
    needs: Sequence[WorkloadNeed],
    capacity: ClusterCapacity,
    format_time: Callable[[datetime], str],
) -> Preflight:
    """Rows per resource and per quota, and the verdict; `format_time` writes an instant for people."""
    requested = sum_requests(need.total() for need in needs)
    requested[PODS] = Decimal(sum(need.extra_pods for need in needs))
    usable = [node for node in capacity.nodes if node.usable]
    allocatable = sum_requests(node.allocatable for node in usable)
    names = sorted(set(requested) | ({"cpu", "memory", PODS} & set(allocatable)), key=_resource_order)
    rows = tuple(
        ResourceRow(
            name, requested.get(name, ZERO), allocatable.get(name, ZERO), capacity.requested.get(name, ZERO)
        )
        for name in names
    )
    quota_rows = tuple(
        QuotaRow(quota.name, resource, hard, quota.used.get(resource, ZERO), need)
        for quota in capacity.quotas
        for resource, hard in sorted(quota.hard.items())
        if (need := quota_need(resource, needs)) is not None
    )
    verdicts = [*_quota_verdicts(quota_rows), *_node_verdicts(spec, window, rows, usable, format_time)]
    ok = not verdicts
    if ok:
        verdicts.append(
            "The nodes have room for the floors, and no ResourceQuota refuses them."
            if usable
            else "No ResourceQuota refuses the floors."
        )
    return Preflight(rows, quota_rows, tuple(verdicts), ok)


def _resource_order(name: str) -> tuple[int, str]:
    return ({"cpu": 0, "memory": 1, PODS: 2}.get(name, 3), name)


def _quota_verdicts(rows: Sequence[QuotaRow]) -> list[str]:
    verdicts = []
    for row in rows:
        if row.short <= 0:
            continue
        needed, free = format_quantity(row.resource, row.needed), format_quantity(row.resource, row.free)
        hard, short = format_quantity(row.resource, row.hard), format_quantity(row.resource, row.short)
        verdicts.append(
            f"ResourceQuota {row.quota} refuses the floors: they need {needed} more {row.resource}, it has "
            f"{free} left of {hard}; raise it by {short} (node headroom's placeholders count against it too)"
        )
    return verdicts


def _node_verdicts(
    spec: CampaignSpec,
    window: Window,
    rows: Sequence[ResourceRow],
    usable: Sequence[NodeFacts],
    format_time: Callable[[datetime], str],
) -> list[str]:
    short = [row for row in rows if row.short > 0]
    if not short:
        return []
    when = format_time(lifecycle_start(spec, window))
    if not usable:
        needed = ", ".join(f"{format_quantity(r.resource, r.needed)} {_unit(r.resource)}" for r in short)
        return [f"No Ready node can take the floors ({needed}): the nodes must come before {when}."]
    largest = max(usable, key=lambda node: [node.allocatable.get(r.resource, ZERO) for r in short])
    nodes = max(
        math.ceil(row.short / largest.allocatable[row.resource])
        if largest.allocatable.get(row.resource, ZERO) > 0
        else 0
        for row in short
    )
    size = ", ".join(
        f"{format_quantity(r.resource, largest.allocatable.get(r.resource, ZERO))} {_unit(r.resource)}"
        for r in short
    )
    more = ", ".join(f"{format_quantity(r.resource, r.short)} {_unit(r.resource)}" for r in short)
    verdict = (
        f"needs {more} more than the nodes have: the cluster autoscaler must add about {nodes} node(s) of "
        f"{size} before {when}; "
    )
    if spec.node_headroom is None:
        verdict += "set nodeHeadroom.leadTime to at least your node provisioning time"
    else:
        start = lifecycle_start(spec, window) - spec.node_headroom.lead_time
        verdict += (
            f"nodeHeadroom's placeholders ask for them from {format_time(start)}: keep "
            f"nodeHeadroom.leadTime ({format_duration(spec.node_headroom.lead_time)}) at least your node "
            "provisioning time"
        )
    return [verdict[0].upper() + verdict[1:]]


def _unit(resource: str) -> str:
    return {"cpu": "CPU", "memory": "memory", PODS: "pods"}.get(resource, resource)


def format_quantity(resource: str, quantity: Decimal) -> str:
    """For people: CPU in cores (`3.5`), memory in GiB or MiB, everything else as a number."""
    if resource.endswith("memory") or resource.endswith("storage"):
        for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if abs(quantity) >= size:
                return f"{_short_number(quantity / size)}{unit}"
        return _short_number(quantity)
    return _short_number(quantity)


def _short_number(value: Decimal) -> str:
    rounded = value.quantize(Decimal("0.01")).normalize()
    return f"{rounded:f}"
