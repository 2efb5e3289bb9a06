"""The previous campaign's curve as a floor over time (`metric.forecast.mode: curve`).

The history is the query's value over the previous campaign, one value a minute, moved forward by the
forecast's `offset` into the current window's time. At `t` the curve floor is

    ceil(max over [t, t + lookahead] of history x growth / targetPerReplica)

so that pods asked for at `t` are Ready before the demand they serve arrives. Writes are bounded and going
down waits like the live metric: the span looked at is widened to

    [s(t) - stabilization, u(t) + raiseEvery + lookahead]

where `u(t)` is `t` rounded down to the `raiseEvery` grid (the metrics interval) and `s(t)` to the
stabilization grid, both counted from the start of the lifecycle. The value can only rise at a `u` grid
instant and only fall at an `s` grid instant, a peak is held at least one stabilization window after it has
passed, and the span always contains `[t, t + lookahead]`. It depends on `t` alone: a restarted operator
computes the same floor. Both ends are clipped to the lifecycle (the history covers no more).

A span that meets a gap (a minute without a sample, or with NaN) has no curve floor: the plain floor applies
for that stretch, never a blind scale-down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .metrics import forecast_replicas
from .numbers import format_number, format_sample
from .spec import CampaignSpec, Forecast
from .windows import Window, lifecycle_end, lifecycle_start

CURVE_STEP = timedelta(minutes=1)


@dataclass(frozen=True)
class History:
    """One value per `step` from `start` on (`values[k]` holds over `[start + k*step, start + (k+1)*step)`),
    already moved into the current window's time; None is a gap."""

    start: datetime
    values: tuple[float | None, ...]
    step: timedelta = CURVE_STEP
    nan_points: int = 0  # of the gaps, how many were NaN or Inf in Prometheus' answer

    @property
    def gaps(self) -> int:
        return sum(1 for value in self.values if value is None)

    def describe_gaps(self) -> str:
        """What is missing, for a condition's message; empty when nothing is."""
        if not self.gaps:
            return ""
        nan = f" ({self.nan_points} NaN)" if self.nan_points else ""
        return f"{self.gaps} of {len(self.values)} minutes of history missing{nan}"

    def index(self, at: datetime) -> int:
        return math.floor((at - self.start) / self.step)


def history_from_points(
    points: Sequence[tuple[datetime, float]],
    begin: datetime,
    finish: datetime,
    offset: timedelta,
    step: timedelta = CURVE_STEP,
) -> History:
    """The answer of a range query over `[begin - offset, finish - offset]` at `step`, moved forward by
    `offset`: one slot per step from `begin` to `finish` inclusive. A slot without a point, or whose point is
    NaN or infinite, is a gap; a point outside the range is ignored."""
    if finish < begin:
        raise ValueError(f"finish {finish} is before begin {begin}")
    count = math.floor((finish - begin) / step) + 1
    values: list[float | None] = [None] * count
    nan_points = 0
    for stamp, value in points:
        index = math.floor((stamp + offset - begin) / step)
        if not 0 <= index < count:
            continue
        if not math.isfinite(value):
            nan_points += 1
            continue
        values[index] = value
    return History(begin, tuple(values), step, nan_points)


@dataclass(frozen=True)
class CurveSettings:
    """How one target follows its curve."""

    growth: float
    target_per_replica: float
    lookahead: timedelta
    raise_every: timedelta  # at most one rise per this long (the metrics interval)
    stabilization: timedelta  # a fall waits this long, and comes at most once per this long


@dataclass(frozen=True)
class CurvePoint:
    """The curve's floor at one instant, before it is clamped, and what it came from."""

    replicas: int
    peak: float  # the highest history value of the span
    span_start: datetime
    span_end: datetime

    def describe(self, settings: CurveSettings) -> str:
        growth = "" if settings.growth == 1 else f" x {format_number(settings.growth)}"
        return (
            f"curve {self.replicas} = ceil(last campaign's {format_sample(self.peak)}{growth} / "
            f"{format_number(settings.target_per_replica)})"
        )


def curve_range(spec: CampaignSpec, window: Window, forecast: Forecast) -> tuple[datetime, datetime]:
    """What is read of the previous campaign for `window`: from the lead time to the end of the ramp-down,
    `offset` ago."""
    return lifecycle_start(spec, window) - forecast.offset, lifecycle_end(spec, window) - forecast.offset


def default_lookahead(spec: CampaignSpec) -> timedelta:
    """leadTime / rampUp.steps: the time one ramp-up step gives pods to become Ready."""
    return spec.lead_time / spec.ramp_up_steps


def curve_settings(
    spec: CampaignSpec,
    forecast: Forecast,
    target_per_replica: float,
    raise_every: timedelta,
    stabilization: timedelta,
) -> CurveSettings:
    return CurveSettings(
        growth=forecast.growth,
        target_per_replica=target_per_replica,
        lookahead=forecast.lookahead if forecast.lookahead is not None else default_lookahead(spec),
        raise_every=raise_every,
        stabilization=stabilization,
    )


def _grid(at: datetime, origin: datetime, every: timedelta) -> datetime:
    """`at` rounded down to the grid of `every` counted from `origin` (itself when `every` is 0)."""
    if every <= timedelta(0) or at <= origin:
        return at
    return origin + math.floor((at - origin) / every) * every


def curve_span(
    now: datetime, begin: datetime, finish: datetime, settings: CurveSettings
) -> tuple[datetime, datetime]:
    """The span of history the floor at `now` looks at (see the module's docstring)."""
    raised_at = _grid(now, begin, settings.raise_every)
    lowered_at = _grid(now, begin, settings.stabilization)
    span_start = max(begin, min(now, lowered_at - settings.stabilization))
    span_end = min(finish, max(now, raised_at + settings.raise_every + settings.lookahead))
    return span_start, max(span_start, span_end)


def curve_point(
    history: History, now: datetime, begin: datetime, finish: datetime, settings: CurveSettings
) -> CurvePoint | None:
    """The curve's floor at `now` in the lifecycle `[begin, finish)`; None when its span meets a gap."""
    span_start, span_end = curve_span(now, begin, finish, settings)
    first, last = history.index(span_start), history.index(span_end)
    if first < 0 or last >= len(history.values):
        return None
    values = history.values[first : last + 1]
    if any(value is None for value in values):
        return None
    peak = max(value for value in values if value is not None)
    replicas = forecast_replicas(peak, settings.growth, settings.target_per_replica)
    return CurvePoint(replicas, peak, span_start, span_end)


@dataclass(frozen=True)
class CurveTable:
    """Each history step's replicas, worked out once: the floor at many instants (a plan's next change) is
    then the highest of a few integers. Gives what `curve_point` gives (ceil is monotonic)."""

    history: History
    replicas: tuple[int | None, ...]

    @classmethod
    def of(cls, history: History, settings: CurveSettings) -> CurveTable:
        replicas = tuple(
            None if value is None else forecast_replicas(value, settings.growth, settings.target_per_replica)
            for value in history.values
        )
        return cls(history, replicas)

    def replicas_at(
        self, now: datetime, begin: datetime, finish: datetime, settings: CurveSettings
    ) -> int | None:
        span_start, span_end = curve_span(now, begin, finish, settings)
        first, last = self.history.index(span_start), self.history.index(span_end)
        if first < 0 or last >= len(self.replicas):
            return None
        values = self.replicas[first : last + 1]
        if any(value is None for value in values):
            return None
        return max(value for value in values if value is not None)


def change_instants(
    now: datetime, begin: datetime, finish: datetime, settings: CurveSettings, history: History
) -> list[datetime]:
    """Every instant in `(now, finish)` at which the curve's floor may change, in time order: the instants
    of the two grids; when a grid is 0, each instant a history step enters or leaves the span instead."""
    instants: set[datetime] = set()
    for every in (settings.raise_every, settings.stabilization):
        if every > timedelta(0):
            at = _grid(now, begin, every) + every if now >= begin else begin
            while at < finish:
                instants.add(at)
                at += every
    shifts = []
    if settings.raise_every <= timedelta(0):
        shifts.append(-settings.lookahead)  # the span's end reaches the next step
    if settings.stabilization <= timedelta(0):
        shifts.append(history.step)  # the span's start leaves a step
    for shift in shifts:
        for index in range(len(history.values) + 1):
            at = history.start + index * history.step + shift
            if now < at < finish:
                instants.add(at)
    return sorted(instants)
