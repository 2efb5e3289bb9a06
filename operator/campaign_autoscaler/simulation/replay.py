"""Replay a traffic curve, 15 s at a time, against each policy; pods become Ready after a start-up delay, and
with a node start-up time only once a node has room for them (`nodes.py`)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from campaign_autoscaler.planning import (
    CampaignSpec,
    Floor,
    Forecast,
    MetricSpec,
    TargetSpec,
    Window,
    compute_floor,
    format_duration,
    lifecycle_end,
    lifecycle_start,
    windows_between,
)
from campaign_autoscaler.planning.curve import History
from campaign_autoscaler.planning.spec import NodeHeadroom

from .nodes import NodeRoom
from .policies import (
    TICK,
    CampaignAutoscaler,
    CampaignAutoscalerOnHpa,
    CronAtStart,
    Observation,
    Policy,
    ReactiveHpa,
    StaticBaseline,
    pods_needed,
)
from .traffic import MINUTE, TrafficCurve

TICKS_PER_MINUTE = MINUTE // TICK


@dataclass(frozen=True)
class PodPool:
    """The pods of one Deployment, as the instants they are (or were) Ready at, in increasing order."""

    ready_at: tuple[datetime, ...] = ()

    @property
    def replicas(self) -> int:
        return len(self.ready_at)

    def ready(self, now: datetime) -> int:
        return bisect.bisect_right(self.ready_at, now)

    def scaled(
        self, replicas: int, now: datetime, startup: timedelta, room: tuple[datetime, ...] | None = None
    ) -> PodPool:
        """Add pods Ready after `startup` (and after their slot in `room` is, pod i taking slot i), or remove
        pods as a ReplicaSet does: not Ready, newest first."""
        if replicas < self.replicas:
            return PodPool(self.ready_at[:replicas])
        added = range(self.replicas, replicas)
        if room is None:
            return PodPool(self.ready_at + tuple(now + startup for _ in added))
        return PodPool(tuple(sorted(self.ready_at + tuple(max(now, room[i]) + startup for i in added))))


@dataclass(frozen=True)
class Slot:
    """One 15 s slot of a replay, as the policy left it at the slot's start."""

    at: datetime
    demand_rps: float
    needed: int  # pods an oracle has Ready
    replicas: int  # pods running or starting (they all cost)
    ready: int
    placeholders: int = 0  # node headroom's placeholder pods (they cost too)


@dataclass(frozen=True)
class Trace:
    policy: str
    slots: tuple[Slot, ...]


@dataclass(frozen=True)
class SimulationSetup:
    spec: CampaignSpec
    target: TargetSpec
    target_label: str  # how reports name the target
    baseline: int
    capacity_per_pod: float
    pod_startup: timedelta
    max_scale_factor: float = 10.0
    # The last campaign's traffic, moved into this curve's time (its minutes `offset` later): with it the
    # replay adds this operator following that curve (metric.forecast.mode curve).
    history: TrafficCurve | None = None
    node_startup: timedelta | None = None  # None: the nodes always have room
    # The target is scaled by an HPA (the reactive HPA's, minReplicas the baseline): adds this operator
    # raising that HPA's bounds, as it does on such a target, beside each of its rows.
    with_hpa: bool = False


@dataclass(frozen=True)
class Simulation:
    setup: SimulationSetup
    curve: TrafficCurve
    floor: Floor
    windows: tuple[Window, ...]  # every window whose lifecycle overlaps the curve
    oracle: Trace
    traces: tuple[Trace, ...]  # one per policy, in the order of `policies_for`


def campaign_windows(spec: CampaignSpec, start: datetime, end: datetime) -> tuple[Window, ...]:
    """The windows whose lifecycle (start - leadTime .. end + rampDown.duration) overlaps [start, end)."""
    return tuple(windows_between(spec, start, end))


CURVE_POLICY = "campaign-autoscaler curve"
ON_HPA = " + HPA"  # what an operator row's name gains when the target is HPA-backed (`--with-hpa`)
DEFAULT_HISTORY_OFFSET = timedelta(days=365)
_SIMULATED_QUERY = "demand"  # the replay's metric is the demand itself


def history_offset(target: TargetSpec) -> timedelta:
    """How long ago the last campaign was: the target's forecast offset, else a year (365d)."""
    forecast = target.metric.forecast if target.metric is not None else None
    return forecast.offset if forecast is not None else DEFAULT_HISTORY_OFFSET


def curve_target(target: TargetSpec, capacity_per_pod: float) -> TargetSpec:
    """The target following its last campaign's curve: as written when its forecast's mode is curve, else
    with the demand as its metric (`capacity_per_pod` per replica) and a curve forecast (its growth, else
    1)."""
    metric = target.metric
    if metric is not None and metric.forecast is not None and metric.forecast.follows_curve:
        return target
    offset = history_offset(target)
    growth = metric.forecast.growth if metric is not None and metric.forecast is not None else 1.0
    forecast = Forecast(offset, f"{offset.days}d", growth, mode="curve")
    return replace(target, metric=MetricSpec(_SIMULATED_QUERY, capacity_per_pod, forecast))


def replay_history(history: TrafficCurve) -> History:
    """The last campaign's traffic (already in this replay's time) as the history a curve is read from."""
    return History(history.start, tuple(history.rps), MINUTE)


def policies_for(setup: SimulationSetup, floor: Floor, windows: tuple[Window, ...]) -> tuple[Policy, ...]:
    """The policies compared: static, a reactive HPA, cron at the start and this operator; with a node
    start-up time, this operator both with and without node headroom (the spec's own nodeHeadroom, or one as
    long as the node start-up); with a history, this operator following the last campaign's curve too; with
    `with_hpa`, each of this operator's rows again on the reactive HPA's target, named `... + HPA`."""
    hpa = ReactiveHpa(
        capacity_per_pod=setup.capacity_per_pod,
        min_replicas=setup.baseline,
        max_replicas=max(setup.baseline, floor.max_replicas),
    )
    ours: tuple[CampaignAutoscaler, ...] = (
        CampaignAutoscaler(
            spec=setup.spec,
            windows=windows,
            baseline=setup.baseline,
            target=setup.target,
            max_scale_factor=setup.max_scale_factor,
        ),
    )
    if setup.node_startup is not None:
        if setup.spec.node_headroom is None:
            headroom = NodeHeadroom(setup.node_startup)
            name = f"campaign-autoscaler + nodeHeadroom {format_duration(setup.node_startup)}"
            ours += (replace(ours[0], spec=replace(setup.spec, node_headroom=headroom), name=name),)
        else:
            spec = replace(setup.spec, node_headroom=None)
            ours += (replace(ours[0], spec=spec, name="campaign-autoscaler without nodeHeadroom"),)
    if setup.history is not None:
        ours += (
            CampaignAutoscaler(
                spec=setup.spec,
                windows=windows,
                baseline=setup.baseline,
                target=curve_target(setup.target, setup.capacity_per_pod),
                max_scale_factor=setup.max_scale_factor,
                name=CURVE_POLICY,
                history=replay_history(setup.history),
            ),
        )
    on_hpa = tuple(CampaignAutoscalerOnHpa(plain, hpa, f"{plain.name}{ON_HPA}") for plain in ours)
    return (
        StaticBaseline(replicas=setup.baseline),
        hpa,
        CronAtStart(windows=windows, baseline=setup.baseline, floor=floor.replicas),
        *ours,
        *(on_hpa if setup.with_hpa else ()),
    )


def simulate(setup: SimulationSetup, curve: TrafficCurve) -> Simulation:
    """Replay `curve` against the policies (see `policies_for`); every policy starts at the baseline, all pods
    Ready."""
    floor = compute_floor(setup.target, setup.baseline, setup.spec.traffic_multiplier, setup.max_scale_factor)
    windows = campaign_windows(setup.spec, curve.start, curve.end)
    traces = tuple(
        replay(policy, curve, setup.capacity_per_pod, setup.baseline, setup.pod_startup, setup.node_startup)
        for policy in policies_for(setup, floor, windows)
    )
    return Simulation(
        setup=setup,
        curve=curve,
        floor=floor,
        windows=windows,
        oracle=oracle_trace(curve, setup.capacity_per_pod),
        traces=traces,
    )


def replay(
    policy: Policy,
    curve: TrafficCurve,
    capacity_per_pod: float,
    initial_replicas: int,
    startup: timedelta,
    node_startup: timedelta | None = None,
) -> Trace:
    """Ask `policy` every TICK, scale the pool to its answer (and its placeholders, which only take room on
    nodes), record what was Ready. With `node_startup`, the nodes start with room for `initial_replicas`."""
    pool = PodPool((curve.start,) * initial_replicas)
    room = NodeRoom.of(initial_replicas, curve.start) if node_startup is not None else None
    state = policy.initial_state()
    slots: list[Slot] = []
    for at, demand_rps in _ticks(curve):
        seen = Observation(at=at, demand_rps=demand_rps, replicas=pool.replicas, ready=pool.ready(at))
        state, wanted = policy.decide(state, seen)
        placeholders = policy.placeholders(seen, wanted)
        if room is not None and node_startup is not None:
            room = room.fit(wanted + placeholders, at, node_startup)
        pool = pool.scaled(wanted, at, startup, room.ready_at if room is not None else None)
        needed = pods_needed(demand_rps, capacity_per_pod)
        slots.append(Slot(at, demand_rps, needed, pool.replicas, pool.ready(at), placeholders))
    return Trace(policy=policy.name, slots=tuple(slots))


def oracle_trace(curve: TrafficCurve, capacity_per_pod: float) -> Trace:
    """Exactly the pods the demand needs, always Ready."""
    slots = []
    for at, demand_rps in _ticks(curve):
        needed = pods_needed(demand_rps, capacity_per_pod)
        slots.append(Slot(at, demand_rps, needed, replicas=needed, ready=needed))
    return Trace(policy="oracle", slots=tuple(slots))


def _ticks(curve: TrafficCurve) -> list[tuple[datetime, float]]:
    return [
        (minute_start + tick * TICK, rps)
        for minute_start, rps in curve.minutes()
        for tick in range(TICKS_PER_MINUTE)
    ]


class CapacityError(ValueError):
    """The capacity of one pod cannot be derived from the inputs."""


def baseline_demand(curve: TrafficCurve, spec: CampaignSpec) -> float | None:
    """Normal peak demand: the curve's own figure, else the highest rate outside every lifecycle."""
    if curve.normal_peak_rps is not None:
        return curve.normal_peak_rps
    windows = campaign_windows(spec, curve.start, curve.end)
    normal = [
        rps
        for at, rps in curve.minutes()
        if not any(lifecycle_start(spec, w) <= at < lifecycle_end(spec, w) for w in windows)
    ]
    return max(normal) if normal else None


def default_capacity_per_pod(curve: TrafficCurve, spec: CampaignSpec, baseline: int) -> float:
    """The baseline demand / the baseline replicas: the baseline is sized for a normal day's peak."""
    demand = baseline_demand(curve, spec)
    if demand is None:
        raise CapacityError(
            f"{curve.source}: every minute is inside the campaign's lifecycle, so the normal demand is "
            "unknown; pass --capacity-per-pod"
        )
    if baseline <= 0 or demand <= 0:
        raise CapacityError(
            f"cannot derive the capacity of a pod from baseline {baseline} and normal demand {demand:g} rps; "
            "pass --capacity-per-pod"
        )
    return demand / baseline
