"""After a window: what each target went through, and what the next event should say.

A `Tally` is what has been seen of one target in one window so far: peaks, the time Ready stayed below what
was wanted inside the window, and whether the capacity was Ready when the window opened. It is folded from
observations by `observe`, one at a time: the operator folds one per pass (and keeps the tally in the event's
status, so a restart continues it), the report folds the samples Prometheus kept of the operator's own series.
Both then call `summarize`, which turns a tally into the numbers and the advice of `status.summary`.

Between two observations the earlier one is taken to hold: a shortfall stretch runs from the observation that
first saw it to the one that first saw it over, clipped to the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from .durations import format_duration
from .metrics import replicas_for_metric
from .numbers import format_number, format_sample
from .windows import Window

Number = TypeVar("Number", int, float)

# The growth assumed over this window's peak when the event sets no forecast growth of its own.
DEFAULT_HEADROOM = 1.2


@dataclass(frozen=True)
class Observation:
    """One look at one target."""

    at: datetime
    desired: int | None  # what the event claimed; None outside the lifecycle (nothing claimed)
    ready: int
    metric: float | None = None  # the metric's value, when the target has one and it answered
    demand: int | None = None  # ceil(metric / targetPerReplica), before any clamp
    floor: int | None = None  # the target's floor in this window (forecast applied)


@dataclass(frozen=True)
class Tally:
    """What has been seen of one target in one window so far."""

    peak_desired: int | None = None
    peak_ready: int | None = None
    peak_metric: float | None = None
    floor: int | None = None  # the highest floor of the window
    short_seconds: float = 0.0  # closed shortfall stretches inside the window
    short_since: datetime | None = None  # the start of the shortfall stretch in progress
    ready_at_start: bool | None = None  # None until an observation inside the window

    @property
    def observed(self) -> bool:
        return self.peak_desired is not None


@dataclass(frozen=True)
class TargetSummary:
    name: str
    peak_desired: int | None
    peak_ready: int | None
    peak_metric: float | None
    short_seconds: float
    ready_at_start: bool | None
    observed_ready_seconds: float | None
    recommendation: str


@dataclass(frozen=True)
class TargetPlan:
    """What the event asks of a target, as far as the advice needs it."""

    lead_time: timedelta
    target_per_replica: float | None = None  # when the target has a metric
    growth: float | None = None  # the forecast's growth, when set


def is_short(seen: Observation) -> bool:
    """Ready below what was wanted: the claim, or the metric's demand where it is known and higher."""
    if seen.desired is None:
        return False
    return seen.ready < max(seen.desired, seen.demand or 0)


def observe(tally: Tally, seen: Observation, window: Window) -> Tally:
    """The tally with one more observation folded in (observations come in time order)."""
    if seen.desired is None:
        return _close(tally, seen.at, window)
    short = is_short(seen)
    tally = replace(
        tally,
        peak_desired=_higher(tally.peak_desired, seen.desired),
        peak_ready=_higher(tally.peak_ready, seen.ready),
        peak_metric=_higher(tally.peak_metric, seen.metric),
        floor=_higher(tally.floor, seen.floor),
    )
    if tally.ready_at_start is None and window.start <= seen.at < window.end:
        tally = replace(tally, ready_at_start=not short)
    if not short or seen.at >= window.end:
        return _close(tally, seen.at, window)
    if tally.short_since is None:
        return replace(tally, short_since=seen.at)
    return tally


def finish(tally: Tally, window: Window) -> Tally:
    """The tally of a window that is over: a stretch still open is closed at the window's end."""
    return _close(tally, window.end, window)


def summarize(
    name: str, tally: Tally, window: Window, plan: TargetPlan, ready_seconds: float | None
) -> TargetSummary:
    tally = finish(tally, window)
    return TargetSummary(
        name=name,
        peak_desired=tally.peak_desired,
        peak_ready=tally.peak_ready,
        peak_metric=tally.peak_metric,
        short_seconds=round(tally.short_seconds, 1),
        ready_at_start=tally.ready_at_start,
        observed_ready_seconds=ready_seconds,
        recommendation=recommend(tally, plan, ready_seconds),
    )


def recommend(tally: Tally, plan: TargetPlan, ready_seconds: float | None) -> str:
    """What the next event should say for this target, in one line."""
    if not tally.observed:
        return "not observed during the window: no advice"
    return f"{_lead_time_advice(plan, ready_seconds)}; {_floor_advice(tally, plan)}"


def headline(event: str, summaries: Sequence[TargetSummary]) -> str:
    """One line for the whole window: readiness at the start, the shortfall, the worst target."""
    observed = [s for s in summaries if s.peak_desired is not None]
    ready = sum(1 for s in observed if s.ready_at_start)
    short = [s for s in observed if s.short_seconds > 0]
    line = f"Window of CampaignEvent {event} completed: {ready}/{len(observed)} target(s) Ready at start"
    if not short:
        return f"{line}, no shortfall in the window"
    worst = max(short, key=lambda s: s.short_seconds)
    return (
        f"{line}, {len(short)} short in the window "
        f"(worst {worst.name}: {_seconds(worst.short_seconds)} below the demand)"
    )


def _lead_time_advice(plan: TargetPlan, ready_seconds: float | None) -> str:
    if ready_seconds is None:
        return "the floor was never seen fully Ready: look at what held the pods before the next window"
    took = _seconds(ready_seconds)
    if ready_seconds > plan.lead_time.total_seconds():
        minutes = math.ceil(ready_seconds / 60)
        return f"leadTime >= {format_duration(timedelta(minutes=minutes))}: pods took {took} to be Ready"
    return f"leadTime {format_duration(plan.lead_time)} was enough: pods took {took} to be Ready"


def _floor_advice(tally: Tally, plan: TargetPlan) -> str:
    floor = tally.floor if tally.floor is not None else tally.peak_desired
    if tally.peak_metric is None or plan.target_per_replica is None:
        if tally.short_seconds > 0:
            return f"floor {floor} was Ready late: {_seconds(tally.short_seconds)} short in the window"
        return f"floor {floor} held through the window"
    headroom = plan.growth or DEFAULT_HEADROOM
    needed = replicas_for_metric(tally.peak_metric * headroom, plan.target_per_replica)
    peak = format_sample(tally.peak_metric)
    if floor >= needed:
        return f"floor {floor} covers this peak ({peak}) x {format_number(headroom)}"
    return f"floor {floor} is below this peak ({peak}) x {format_number(headroom)}: set replicas >= {needed}"


def _seconds(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds)))


def _close(tally: Tally, at: datetime, window: Window) -> Tally:
    if tally.short_since is None:
        return tally
    begin, end = max(tally.short_since, window.start), min(at, window.end)
    counted = max(0.0, (end - begin).total_seconds())
    return replace(tally, short_seconds=tally.short_seconds + counted, short_since=None)


def _higher(current: Number | None, seen: Number | None) -> Number | None:
    if seen is None:
        return current
    return seen if current is None else max(current, seen)
