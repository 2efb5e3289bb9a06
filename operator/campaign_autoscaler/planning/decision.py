"""The one per-target decision: what an event claims on one target at one instant.

The operator's pass and `simulate` both call `decide_target`; nothing else decides a claim. Everything it
needs comes in (the spec, the window, `now`, the baseline, the forecast, the latest metric reading and what
the previous decision left behind) and everything it decided goes out, including the memory for the next
decision, so that the same inputs give the same replica timeline wherever they are replayed.

The planned floor follows the timeline exactly (each ramp step at its instant, up and down); only the
live metric's share is stabilized going down, like an HPA's scale-down stabilization: the highest
metric-driven count of the last `stabilization` holds. A failed reading never lowers what the metric holds,
and counts as wanting it: after an outage, a lower answer waits a whole window before it lowers anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .floors import Floor, clamp, compute_floor
from .metrics import Stabilizer, replicas_for_metric
from .numbers import format_sample
from .spec import CampaignSpec, TargetSpec
from .timeline import claim_fraction, ramp_replicas, transitions
from .windows import Window


@dataclass(frozen=True)
class MetricReading:
    """One answer of a target's metric query: a value, or the reason there is none."""

    at: datetime
    value: float | None = None
    failure_reason: str | None = None  # CamelCase, e.g. Timeout, NaN, NoSeries
    failure_detail: str = ""

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


@dataclass(frozen=True)
class TargetDecision:
    wanted: int | None  # the claim from now on; None: no claim (before the lead time, after the ramp-down)
    planned: int | None  # the timeline's step alone, before the metric
    floor: Floor
    memory: MetricMemory
    reason: str


def decide_target(inputs: TargetInputs) -> TargetDecision:
    """The claim of one event on one target at `inputs.now`, and why."""
    floor = compute_floor(
        inputs.target,
        inputs.baseline,
        inputs.spec.traffic_multiplier,
        inputs.max_scale_factor,
        forecast_replicas=inputs.forecast_replicas,
    )
    fraction = claim_fraction(inputs.spec, inputs.window, inputs.now)
    if fraction is None:
        # Outside the lifecycle nothing is claimed, and the metric's history starts afresh next window.
        return TargetDecision(None, None, floor, MetricMemory(), floor.reason)
    planned = ramp_replicas(inputs.baseline, floor.replicas, fraction)
    metric = inputs.target.metric
    if metric is None:
        return TargetDecision(planned, planned, floor, inputs.memory, floor.reason)
    memory = fold_reading(
        _seeded(inputs, floor.replicas),
        inputs.reading,
        metric.target_per_replica,
        inputs.now,
        inputs.stabilization,
    )
    wanted = planned
    if memory.held is not None:
        wanted = clamp(max(planned, memory.held), floor.min_replicas, floor.max_replicas)
    return TargetDecision(wanted, planned, floor, memory, _reason(floor, memory, wanted))


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


def _seeded(inputs: TargetInputs, floor: int) -> MetricMemory:
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


def _highest_planned(inputs: TargetInputs, floor: int, since: datetime) -> int:
    """The highest step the plan claimed in `[since, now]` (the plan changes only at its transitions)."""
    instants = [since, inputs.now]
    instants += [t.at for t in transitions(inputs.spec, inputs.window) if since < t.at <= inputs.now]
    fractions = [claim_fraction(inputs.spec, inputs.window, at) for at in instants]
    steps = [ramp_replicas(inputs.baseline, floor, f) for f in fractions if f is not None]
    return max(steps, default=inputs.baseline)


def _reason(floor: Floor, memory: MetricMemory, wanted: int) -> str:
    if memory.failure is not None:
        return f"{floor.reason}; metric unavailable ({memory.failure.failure_reason}), holding {wanted}"
    if memory.held is not None and memory.held > floor.replicas and memory.value is not None:
        return f"{floor.reason}; metric {format_sample(memory.value)} wants {memory.held}"
    return floor.reason
