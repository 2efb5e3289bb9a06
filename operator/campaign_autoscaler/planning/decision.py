"""The one per-target decision: what an event claims on one target at one instant.

The operator's pass and `simulate` both call `decide_target`; nothing else decides a claim. Everything it
needs comes in (the spec, the window, `now`, the baseline, the forecast, the latest metric reading and what
the previous decision left behind) and everything it decided goes out, including the memory for the next
decision, so that the same inputs give the same replica timeline wherever they are replayed.

The planned floor follows the timeline exactly (each ramp step at its instant, up and down), or, with
`metric.forecast.mode: curve` and the previous campaign's history at hand, the curve's floor (`curve`) where
the history has no gap, never below the baseline. The live metric's share is stabilized going down,
like an HPA's scale-down stabilization: the highest metric-driven count of the last `stabilization`
holds. A failed reading never lowers what the metric holds, and counts as wanting it: after an outage, a
lower answer waits a whole window before it lowers anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .curve import (
    CurvePoint,
    CurveSettings,
    CurveTable,
    History,
    change_instants,
    curve_point,
    curve_settings,
)
from .floors import Floor, clamp, compute_floor
from .metrics import Stabilizer, replicas_for_metric
from .numbers import format_sample
from .spec import CampaignSpec, TargetSpec
from .timeline import claim_fraction, ramp_replicas, transitions
from .windows import Window, lifecycle_end, lifecycle_start


@dataclass(frozen=True)
class MetricReading:
    """One answer of a target's metric query: a value, or the reason there is none."""

    at: datetime
    value: float | None = None
    failure_reason: str | None = None  # CamelCase, e.g. Timeout, NaN, NoSeries
    failure_detail: str = ""
    points: tuple[tuple[datetime, float], ...] = ()  # a curve's answer: its points (NaN kept); value: peak

    @property
    def failed(self) -> bool:
        return self.value is None

    def describe_failure(self) -> str:
        return (
            f"{self.failure_reason}: {self.failure_detail}"
            if self.failure_detail
            else str(self.failure_reason)
        )


@dataclass(frozen=True)
class MetricSample:
    """What a sampler holds for one query, as a pass reads it: the latest answer, if any yet."""

    since: datetime  # when the query was first wanted
    latest: MetricReading | None = None  # the latest answer, a value or a failure, stamped when it came
    failures: int = 0  # failed answers since the last good one


def current_reading(sample: MetricSample, now: datetime, max_age: timedelta) -> MetricReading | None:
    """The reading a decision may use at `now`: the latest answer while it is younger than `max_age`.

    A value older than that, or no answer at all that long after the query was first wanted (a Prometheus
    that hangs), is a failure "Stale" stamped with the instant it went stale: blind, so nothing is lowered.
    None while the first answer is still awaited.
    """
    latest = sample.latest
    if latest is not None and latest.failed:
        return latest
    answered_at = latest.at if latest is not None else sample.since
    if now - answered_at <= max_age:
        return latest
    seconds = round(max_age.total_seconds())
    detail = f"no answer from Prometheus in the last {seconds}s"
    return MetricReading(answered_at + max_age, None, "Stale", detail)


@dataclass(frozen=True)
class MetricMemory:
    """What the live metric of one target left for the next decision."""

    stabilizer: Stabilizer = field(default_factory=Stabilizer)
    held: int | None = None  # the metric-driven replicas in force; never lowered while blind
    value: float | None = None  # the last good value
    folded_at: datetime | None = None  # the reading last folded in (a reading is folded once)
    failure: MetricReading | None = None  # the latest failed reading of the current outage


@dataclass(frozen=True)
class TargetInputs:
    """Everything one decision depends on."""

    spec: CampaignSpec
    target: TargetSpec
    window: Window
    now: datetime
    baseline: int
    max_scale_factor: float
    stabilization: timedelta
    forecast_replicas: int | None = None
    reading: MetricReading | None = None  # the latest reading of the target's metric, if any yet
    memory: MetricMemory = field(default_factory=MetricMemory)
    # This event's claim on the target as found on it. After a restart the metric's history is gone: the
    # claim in force is the least the metric may keep until the stabilization has seen new readings.
    claim_in_force: int | None = None
    # With metric.forecast.mode curve: the previous campaign's curve for this window (None: not read yet,
    # or none to read; the plain floor applies), and how often a rise may be written (--metrics-interval).
    history: History | None = None
    raise_every: timedelta = timedelta(seconds=15)

    def curve(self) -> CurveSettings | None:
        """How the target follows its curve; None unless its forecast's mode is curve."""
        metric = self.target.metric
        if metric is None or metric.forecast is None or not metric.forecast.follows_curve:
            return None
        return curve_settings(
            self.spec, metric.forecast, metric.target_per_replica, self.raise_every, self.stabilization
        )


@dataclass(frozen=True)
class TargetDecision:
    wanted: int | None  # the claim from now on; None: no claim (before the lead time, after the ramp-down)
    planned: int | None  # the timeline's step alone, before the metric
    floor: Floor
    memory: MetricMemory
    reason: str


def decide_target(inputs: TargetInputs) -> TargetDecision:
    """The claim of one event on one target at `inputs.now`, and why."""
    floor = _floor(inputs)
    step = planned_at(inputs, floor, inputs.now)
    if step is None:
        # Outside the lifecycle nothing is claimed, and the metric's history starts afresh next window.
        return TargetDecision(None, None, floor, MetricMemory(), floor.reason)
    planned, plan_reason = step
    metric = inputs.target.metric
    if metric is None:
        return TargetDecision(planned, planned, floor, inputs.memory, plan_reason)
    memory = fold_reading(
        _seeded(inputs, floor),
        inputs.reading,
        metric.target_per_replica,
        inputs.now,
        inputs.stabilization,
    )
    wanted = planned
    if memory.held is not None:
        wanted = clamp(max(planned, memory.held), floor.min_replicas, floor.max_replicas)
    # The metric is said to want more when it beats the floor (the curve's, when following one).
    beaten = planned if inputs.curve() is not None else floor.replicas
    return TargetDecision(wanted, planned, floor, memory, _reason(plan_reason, beaten, memory, wanted))


def planned_at(inputs: TargetInputs, floor: Floor, at: datetime) -> tuple[int, str] | None:
    """What the plan claims at `at`, before the live metric, and why; None outside the lifecycle.

    The timeline's step; with a curve, the curve's floor where its history has no gap (clamped to
    `[minReplicas, maxReplicas]`, never below the baseline), else the step of the plain floor.
    """
    fraction = claim_fraction(inputs.spec, inputs.window, at)
    if fraction is None:
        return None
    point = _curve_point(inputs, at)
    if point is None:
        step = ramp_replicas(inputs.baseline, floor.replicas, fraction)
        settings = inputs.curve()
        if settings is None:
            return step, floor.reason
        why = "no history yet" if inputs.history is None else "gap in the history"
        return step, f"{floor.reason} ({why}: plain floor)"
    replicas = _held(inputs, floor, point.replicas)
    settings = inputs.curve()
    assert settings is not None
    reason = point.describe(settings)
    if replicas != point.replicas:
        reason += f", held at {replicas} (baseline {inputs.baseline}, min {floor.min_replicas}, "
        reason += f"max {floor.max_replicas})"
    return replicas, reason


def _held(inputs: TargetInputs, floor: Floor, curve_replicas: int) -> int:
    """The curve's replicas never below the baseline, within `[minReplicas, maxReplicas]`."""
    return clamp(max(curve_replicas, inputs.baseline), floor.min_replicas, floor.max_replicas)


def _curve_point(inputs: TargetInputs, at: datetime) -> CurvePoint | None:
    settings = inputs.curve()
    if settings is None or inputs.history is None:
        return None
    begin = lifecycle_start(inputs.spec, inputs.window)
    finish = lifecycle_end(inputs.spec, inputs.window)
    return curve_point(inputs.history, at, begin, finish, settings)


def next_planned_change(inputs: TargetInputs) -> tuple[datetime, int] | None:
    """The curve's next planned change after `inputs.now` in this window: when, and to how many replicas
    (None without a curve, or when the plan stays as it is until the end of the ramp-down)."""
    settings = inputs.curve()
    if settings is None or inputs.history is None:
        return None
    floor = _floor(inputs)
    now_step = planned_at(inputs, floor, inputs.now)
    current = now_step[0] if now_step is not None else None
    begin = lifecycle_start(inputs.spec, inputs.window)
    finish = lifecycle_end(inputs.spec, inputs.window)
    # The same plan as `planned_at`, at many instants: the timeline and the curve worked out once.
    timeline = transitions(inputs.spec, inputs.window)
    table = CurveTable.of(inputs.history, settings)
    instants = change_instants(inputs.now, begin, finish, settings, inputs.history)
    instants += [t.at for t in timeline if inputs.now < t.at < finish]
    step = 0  # the timeline's step in force at `at` (the instants come in time order)
    for at in sorted(set(instants)):
        while step + 1 < len(timeline) and timeline[step + 1].at <= at:
            step += 1
        curve_replicas = table.replicas_at(at, begin, finish, settings)
        if curve_replicas is not None:
            replicas = _held(inputs, floor, curve_replicas)
        else:
            replicas = ramp_replicas(inputs.baseline, floor.replicas, timeline[step].fraction)
        if replicas != current:
            return at, replicas
    return None


def planned_changes(inputs: TargetInputs) -> list[tuple[datetime, int]]:
    """Every change the curve plans over `inputs.window` (before the live metric): from the start of the
    lifecycle, when and to how many replicas; empty without a curve."""
    if inputs.curve() is None or inputs.history is None:
        return []
    begin = lifecycle_start(inputs.spec, inputs.window)
    first = planned_at(replace(inputs, now=begin), _floor(inputs), begin)
    changes = [] if first is None else [(begin, first[0])]
    at = begin
    while (change := next_planned_change(replace(inputs, now=at))) is not None:
        changes.append(change)
        at = change[0]
    return changes


def _floor(inputs: TargetInputs) -> Floor:
    return compute_floor(
        inputs.target,
        inputs.baseline,
        inputs.spec.traffic_multiplier,
        inputs.max_scale_factor,
        forecast_replicas=inputs.forecast_replicas,
    )


def fold_reading(
    memory: MetricMemory,
    reading: MetricReading | None,
    target_per_replica: float,
    now: datetime,
    stabilization: timedelta,
) -> MetricMemory:
    """The metric memory after `reading`: a value is stabilized in, a failure only marks the outage."""
    if reading is None or reading.at == memory.folded_at:
        return memory
    if reading.failed:
        # Blind, the held value stays wanted: recorded as such, so that the first answer after an outage
        # longer than the stabilization window lowers nothing before a whole window has passed again.
        stabilizer = memory.stabilizer
        if memory.held is not None:
            stabilizer = stabilizer.record(reading.at, memory.held, stabilization)
        return MetricMemory(stabilizer, memory.held, memory.value, reading.at, failure=reading)
    assert reading.value is not None
    stabilizer = memory.stabilizer.record(
        reading.at, replicas_for_metric(reading.value, target_per_replica), stabilization
    )
    return MetricMemory(stabilizer, stabilizer.stabilized(now, stabilization), reading.value, reading.at)


def _seeded(inputs: TargetInputs, floor: Floor) -> MetricMemory:
    """After a restart, the metric memory the claim in force implies.

    Only a claim above everything the plan asked for over the last stabilization window can have come from
    the metric; a claim the plan explains seeds nothing, so the next ramp-down step still lands on time.
    """
    memory, claim = inputs.memory, inputs.claim_in_force
    if memory.held is not None or memory.folded_at is not None or claim is None:
        return memory
    if claim <= _highest_planned(inputs, floor, inputs.now - inputs.stabilization):
        return memory
    return MetricMemory(
        stabilizer=memory.stabilizer.record(inputs.now, claim, inputs.stabilization), held=claim
    )


def _highest_planned(inputs: TargetInputs, floor: Floor, since: datetime) -> int:
    """The highest step the plan claimed in `[since, now]` (the plan changes only at its transitions).

    With a curve, the plain plan counts too: it was in force until the curve was read."""
    instants = [since, inputs.now]
    instants += [t.at for t in transitions(inputs.spec, inputs.window) if since < t.at <= inputs.now]
    plans = [inputs] if inputs.history is None else [inputs, replace(inputs, history=None)]
    steps = [
        step[0] for plan in plans for at in instants if (step := planned_at(plan, floor, at)) is not None
    ]
    return max(steps, default=inputs.baseline)


def _reason(plan_reason: str, beaten: int, memory: MetricMemory, wanted: int) -> str:
    if memory.failure is not None:
        return f"{plan_reason}; metric unavailable ({memory.failure.failure_reason}), holding {wanted}"
    if memory.held is not None and memory.held > beaten and memory.value is not None:
        return f"{plan_reason}; metric {format_sample(memory.value)} wants {memory.held}"
    return plan_reason
