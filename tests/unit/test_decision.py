"""`decide_target`: the one per-target decision, phase by phase, with the live metric, its stabilization,
failures, restarts and forecasts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaign_autoscaler.planning import parse_spec
from campaign_autoscaler.planning.decision import (
    MetricMemory,
    MetricReading,
    MetricSample,
    TargetDecision,
    TargetInputs,
    current_reading,
    decide_target,
    fold_reading,
)
from campaign_autoscaler.planning.metrics import Stabilizer
from campaign_autoscaler.planning.windows import Window

START = datetime(2026, 9, 9, 0, 0, tzinfo=UTC)
END = datetime(2026, 9, 9, 10, 0, tzinfo=UTC)
WINDOW = Window(START, END)
MINUTE = timedelta(minutes=1)
TICK = timedelta(seconds=15)
STABILIZATION = timedelta(seconds=300)
INT32_MAX = 2**31 - 1
QUERY = 'sum(rate(http_requests_total{app="checkout"}[2m]))'
BASELINE = 4  # x 2.5 -> floor 10


def spec_with(**target: Any):
    """Baseline 4 x 2.5 = floor 10; 30m lead in 3 steps (6, 8, 10); 1h ramp-down in 4 steps (9, 7, 6, 4)."""
    return parse_spec(
        {
            "start": "2026-09-09T00:00:00Z",
            "end": "2026-09-09T10:00:00Z",
            "leadTime": "30m",
            "rampUp": {"steps": 3},
            "rampDown": {"duration": "1h", "steps": 4},
            "trafficMultiplier": 2.5,
            "targets": [{"name": "checkout", **target}],
        }
    )


PLAIN = spec_with()
METRIC = spec_with(metric={"query": QUERY, "targetPerReplica": 100}, maxReplicas=30)


def decide(
    spec=PLAIN,
    now: datetime = START,
    *,
    reading: MetricReading | None = None,
    memory: MetricMemory | None = None,
    **overrides: Any,
) -> TargetDecision:
    inputs = TargetInputs(
        spec=spec,
        target=spec.targets[0],
        window=WINDOW,
        now=now,
        baseline=BASELINE,
        max_scale_factor=10.0,
        stabilization=STABILIZATION,
        reading=reading,
        memory=memory or MetricMemory(),
    )
    return decide_target(replace(inputs, **overrides))


def value_at(at: datetime, value: float) -> MetricReading:
    return MetricReading(at, value)


def failure_at(at: datetime, reason: str = "Timeout") -> MetricReading:
    return MetricReading(at, None, reason, "no answer within 5s")


def run(
    spec, readings: list[tuple[datetime, MetricReading | None]], memory: MetricMemory | None = None
) -> list[tuple[datetime, int | None]]:
    """Decide at each instant with its reading, carrying the memory; the claims in turn."""
    memory = memory or MetricMemory()
    claims = []
    for now, reading in readings:
        decision = decide(spec, now, reading=reading, memory=memory)
        memory = decision.memory
        claims.append((now, decision.wanted))
    return claims


# --- the planned timeline ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "now",
    [START - timedelta(days=3), START - 30 * MINUTE - timedelta(microseconds=1)],
    ids=["days-before", "just-before-lead-time"],
)
def test_pending_claims_nothing_and_forgets_the_metric(now):
    remembered = MetricMemory(held=25, value=2500.0, folded_at=now - MINUTE)
    decision = decide(METRIC, now, reading=value_at(now, 2500.0), memory=remembered)
    assert decision.wanted is None
    assert decision.planned is None
    assert decision.memory == MetricMemory()
    assert decision.floor.replicas == 10  # the floor is still told, for the status


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-30 * MINUTE, 6),  # ramp-up 1/3: 4 + ceil(6 x 1/3)
        (-20 * MINUTE - timedelta(microseconds=1), 6),
        (-20 * MINUTE, 8),  # ramp-up 2/3
        (-10 * MINUTE - timedelta(microseconds=1), 8),
        (-10 * MINUTE, 10),  # ramp-up 3/3: the floor, Ready before the window opens
        (-timedelta(microseconds=1), 10),
    ],
)
def test_pre_scaling_steps_at_their_instants(offset, expected):
    decision = decide(PLAIN, START + offset)
    assert decision.wanted == expected
    assert decision.planned == expected


@pytest.mark.parametrize("now", [START, START + 5 * timedelta(hours=1), END - timedelta(microseconds=1)])
def test_active_holds_the_floor(now):
    decision = decide(PLAIN, now)
    assert decision.wanted == decision.planned == decision.floor.replicas == 10
    assert decision.reason == "floor 10 = ceil(2.5 x baseline 4)"


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(0), 10),  # the floor holds from `end` until the first step
        (15 * MINUTE - timedelta(microseconds=1), 10),
        (15 * MINUTE, 9),  # 4 + ceil(6 x 3/4)
        (30 * MINUTE - timedelta(microseconds=1), 9),
        (30 * MINUTE, 7),  # 4 + ceil(6 x 2/4)
        (45 * MINUTE, 6),  # 4 + ceil(6 x 1/4)
        (60 * MINUTE - timedelta(microseconds=1), 6),
    ],
)
def test_ramping_down_steps_land_on_time(offset, expected):
    assert decide(PLAIN, END + offset).wanted == expected


@pytest.mark.parametrize("now", [END + timedelta(hours=1), END + timedelta(days=30)])
def test_completed_claims_nothing(now):
    remembered = MetricMemory(held=12, value=1200.0, folded_at=now - MINUTE)
    decision = decide(METRIC, now, reading=value_at(now, 1200.0), memory=remembered)
    assert decision.wanted is None
    assert decision.planned is None
    assert decision.memory == MetricMemory()


def test_floor_at_or_below_the_baseline_claims_the_baseline():
    decision = decide(spec_with(replicas=2), START)
    assert decision.wanted == BASELINE


# --- the live metric ----------------------------------------------------------------------------------------
def test_metric_above_the_floor_raises_the_claim():
    decision = decide(METRIC, START + MINUTE, reading=value_at(START + MINUTE, 1450.0))
    assert decision.planned == 10
    assert decision.wanted == 15  # ceil(1450 / 100)
    assert decision.memory.held == 15
    assert decision.memory.value == 1450.0
    assert "metric 1450 wants 15" in decision.reason


def test_metric_below_the_floor_keeps_the_planned_step():
    now = START - 30 * MINUTE
    decision = decide(METRIC, now, reading=value_at(now, 120.0))
    assert decision.memory.held == 2
    assert decision.wanted == 6  # ramp-up 1/3, not the metric's 2


def test_metric_during_pre_scaling_raises_above_the_ramp_step():
    now = START - 25 * MINUTE
    decision = decide(METRIC, now, reading=value_at(now, 1100.0))
    assert decision.planned == 6
    assert decision.wanted == 11


def test_metric_is_clamped_to_max_replicas():
    decision = decide(METRIC, START, reading=value_at(START, 5000.0))
    assert decision.memory.held == 50
    assert decision.wanted == 30


def test_metric_is_clamped_to_the_default_max_of_the_scale_factor():
    spec = spec_with(metric={"query": QUERY, "targetPerReplica": 100})
    decision = decide(spec, START, reading=value_at(START, 10_000.0))
    assert decision.wanted == 40  # baseline 4 x max scale factor 10


def test_huge_metric_values_are_capped_at_the_int32_limit():
    spec = spec_with(metric={"query": QUERY, "targetPerReplica": 0.001}, maxReplicas=INT32_MAX)
    decision = decide(spec, START, reading=value_at(START, 1e300))
    assert decision.memory.held == INT32_MAX
    assert decision.wanted == INT32_MAX


def test_a_decrease_is_held_for_the_stabilization_window_then_drops_to_the_planned_step():
    t0 = START + MINUTE
    readings = [(t0, value_at(t0, 2000.0))]  # 20 replicas
    at = t0
    while at < t0 + 8 * MINUTE:
        at += TICK
        readings.append((at, value_at(at, 100.0)))  # 1 replica: below the floor
    claims = dict(run(METRIC, readings))
    assert claims[t0] == 20
    assert claims[t0 + TICK] == 20
    assert claims[t0 + STABILIZATION] == 20  # the window is inclusive
    assert claims[t0 + STABILIZATION + TICK] == 10  # the planned floor, not the metric's 1
    assert set(claims[t] for t in claims if t > t0 + STABILIZATION) == {10}


def test_the_stabilization_window_is_an_input():
    t0 = START + MINUTE
    memory = decide(METRIC, t0, reading=value_at(t0, 2000.0), stabilization=MINUTE).memory
    later = t0 + MINUTE + TICK
    held = decide(METRIC, t0 + MINUTE, reading=value_at(t0 + MINUTE, 100.0), memory=memory)
    assert held.wanted == 20
    dropped = decide(METRIC, later, reading=value_at(later, 100.0), memory=memory, stabilization=MINUTE)
    assert dropped.wanted == 10


def test_an_increase_is_immediate():
    t0 = START + MINUTE
    memory = decide(METRIC, t0, reading=value_at(t0, 1200.0)).memory
    decision = decide(METRIC, t0 + TICK, reading=value_at(t0 + TICK, 2500.0), memory=memory)
    assert decision.wanted == 25


def test_ramp_down_steps_are_not_held_by_the_stabilization():
    # The metric stays below the floor: the claim must follow the planned steps to the instant, whatever
    # higher step the stabilization window has seen.
    instants = [END - 10 * MINUTE + i * TICK for i in range(int(70 * MINUTE / TICK) + 1)]
    with_metric = run(METRIC, [(at, value_at(at, 250.0)) for at in instants])
    plain = run(PLAIN, [(at, None) for at in instants])
    assert with_metric == plain
    claims = dict(with_metric)
    assert claims[END + 15 * MINUTE - TICK] == 10
    assert claims[END + 15 * MINUTE] == 9
    assert claims[END + 30 * MINUTE] == 7
    assert claims[END + 45 * MINUTE] == 6
    assert claims[END + 60 * MINUTE - TICK] == 6
    assert claims[END + 60 * MINUTE] is None


def test_a_metric_spike_before_the_end_is_stabilized_but_the_later_steps_are_not():
    spike = END - MINUTE
    instants = [END - 2 * MINUTE + i * TICK for i in range(int(40 * MINUTE / TICK))]
    readings = [(at, value_at(at, 1800.0 if at == spike else 100.0)) for at in instants]
    claims = dict(run(METRIC, readings))
    assert claims[spike] == 18
    assert claims[spike + STABILIZATION] == 18
    assert claims[spike + STABILIZATION + TICK] == 10  # the floor still holds until the first step
    assert claims[END + 15 * MINUTE] == 9
    assert claims[END + 30 * MINUTE] == 7


# --- blind --------------------------------------------------------------------------------------------------
def test_a_failed_reading_never_lowers_the_held_value():
    t0 = START + MINUTE
    memory = decide(METRIC, t0, reading=value_at(t0, 2000.0)).memory
    # Blind for longer than the stabilization window: nothing lowers the 20 replicas.
    for step in range(1, 41):
        at = t0 + step * TICK
        failed = failure_at(at)
        decision = decide(METRIC, at, reading=failed, memory=memory)
        memory = decision.memory
        assert decision.wanted == 20
        assert memory.held == 20
        assert memory.failure == failed
        assert memory.value == 2000.0  # the last good value
    assert "metric unavailable (Timeout), holding 20" in decision.reason


def test_a_failed_first_reading_keeps_the_planned_step_and_marks_the_outage():
    now = START - 30 * MINUTE
    failed = failure_at(now, "NoSeries")
    decision = decide(METRIC, now, reading=failed)
    assert decision.wanted == 6
    assert decision.memory.held is None
    assert decision.memory.failure == failed
    assert decision.memory.folded_at == now


def test_a_good_reading_after_an_outage_ends_it():
    t0 = START + MINUTE
    memory = decide(METRIC, t0, reading=value_at(t0, 2000.0)).memory
    memory = decide(METRIC, t0 + TICK, reading=failure_at(t0 + TICK), memory=memory).memory
    assert memory.failure is not None
    back = t0 + 2 * TICK
    decision = decide(METRIC, back, reading=value_at(back, 1200.0), memory=memory)
    assert decision.memory.failure is None
    assert decision.memory.value == 1200.0
    assert decision.wanted == 20  # still inside the stabilization window of the 20


def test_a_reading_is_folded_once():
    t0 = START + MINUTE
    reading = value_at(t0, 2000.0)
    once = fold_reading(MetricMemory(), reading, 100, t0, STABILIZATION)
    assert once.folded_at == t0
    assert len(once.stabilizer.samples) == 1
    again = fold_reading(once, reading, 100, t0 + 5 * MINUTE, STABILIZATION)
    assert again is once
    failed = failure_at(t0 + TICK)
    blind = fold_reading(once, failed, 100, t0 + TICK, STABILIZATION)
    assert fold_reading(blind, failed, 100, t0 + 2 * TICK, STABILIZATION) is blind


def test_the_same_reading_presented_twice_decides_the_same():
    t0 = START + MINUTE
    first = decide(METRIC, t0, reading=value_at(t0, 2000.0))
    low = value_at(t0 + TICK, 100.0)
    second = decide(METRIC, t0 + TICK, reading=low, memory=first.memory)
    third = decide(METRIC, t0 + 2 * TICK, reading=low, memory=second.memory)
    assert third.memory == second.memory
    assert len(third.memory.stabilizer.samples) == 2


def test_no_reading_yet_keeps_the_planned_step():
    decision = decide(METRIC, START, reading=None)
    assert decision.wanted == 10
    assert decision.memory == MetricMemory()


# --- after a restart ----------------------------------------------------------------------------------------
def test_the_claim_in_force_seeds_the_held_value_after_a_restart():
    t0 = START + 2 * timedelta(hours=1)
    claims = run(
        METRIC,
        [(t0 + i * TICK, value_at(t0 + i * TICK, 100.0)) for i in range(24)],
        memory=None,
    )
    assert {claim for _, claim in claims} == {10}  # without history: the floor

    seeded = []
    memory = MetricMemory()
    for i in range(24):
        at = t0 + i * TICK
        decision = decide(METRIC, at, reading=value_at(at, 100.0), memory=memory, claim_in_force=18)
        memory = decision.memory
        seeded.append((at, decision.wanted))
    claims = dict(seeded)
    assert claims[t0] == 18
    assert claims[t0 + STABILIZATION] == 18
    assert claims[t0 + STABILIZATION + TICK] == 10


def test_a_restart_does_not_hold_the_next_ramp_down_step():
    # The operator restarts (or a standby takes over) one minute before the first ramp-down step. The claim
    # in force is the planned step itself, 10, and the metric wants 2: none of the claim is the metric's, so
    # nothing is left to stabilize and the step to 9 must land on time, as it does without the restart.
    restart = END + 14 * MINUTE
    claim_in_force = 10
    memory = MetricMemory()
    claims = {}
    for i in range(9):
        at = restart + i * TICK
        decision = decide(
            METRIC, at, reading=value_at(at, 200.0), memory=memory, claim_in_force=claim_in_force
        )
        memory, claim_in_force = decision.memory, decision.wanted
        claims[at] = decision.wanted
    assert claims[restart] == 10
    assert claims[END + 15 * MINUTE] == 9


def test_the_claim_in_force_holds_through_a_failed_reading_after_a_restart():
    now = START + timedelta(hours=3)
    decision = decide(METRIC, now, reading=failure_at(now), claim_in_force=17)
    assert decision.wanted == 17
    assert decision.memory.held == 17


def test_the_claim_in_force_does_not_override_the_history():
    t0 = START + MINUTE
    memory = decide(METRIC, t0, reading=value_at(t0, 1200.0)).memory
    decision = decide(
        METRIC, t0 + TICK, reading=value_at(t0 + TICK, 1200.0), memory=memory, claim_in_force=25
    )
    assert decision.wanted == 12


def test_the_claim_in_force_is_ignored_without_a_metric():
    assert decide(PLAIN, START, claim_in_force=25).wanted == 10


# --- forecast -----------------------------------------------------------------------------------------------
def test_a_forecast_raises_the_floor_and_the_ramp():
    assert decide(PLAIN, START, forecast_replicas=16).wanted == 16
    assert decide(PLAIN, START - 30 * MINUTE, forecast_replicas=16).wanted == 8  # 4 + ceil(12 x 1/3)
    decision = decide(PLAIN, START, forecast_replicas=16)
    assert decision.floor.replicas == 16
    assert decision.reason == "floor 16 = forecast 16"


def test_a_forecast_below_the_floor_changes_nothing():
    assert decide(PLAIN, START, forecast_replicas=7).wanted == 10


def test_the_metric_is_still_raised_above_a_forecast():
    decision = decide(METRIC, START, forecast_replicas=16, reading=value_at(START, 2100.0))
    assert decision.wanted == 21


def test_a_stabilizer_from_elsewhere_is_carried_not_rebuilt():
    # The memory travels whole: a sample a previous decision recorded still counts.
    t0 = START + MINUTE
    memory = MetricMemory(stabilizer=Stabilizer(((t0, 22),)), held=22, value=2200.0, folded_at=t0)
    decision = decide(METRIC, t0 + TICK, reading=value_at(t0 + TICK, 100.0), memory=memory)
    assert decision.wanted == 22


# --- the reading a pass may use: the latest sample and its age ---------------------------------------------
def test_a_fresh_value_is_used_and_a_value_older_than_the_max_age_is_blind() -> None:
    t0 = datetime(2026, 9, 9, tzinfo=UTC)
    max_age = timedelta(seconds=35)
    answer = MetricReading(t0, 812.5)
    sample = MetricSample(since=t0 - timedelta(seconds=1), latest=answer)
    assert current_reading(sample, t0 + max_age, max_age) is answer
    stale = current_reading(sample, t0 + max_age + timedelta(seconds=1), max_age)
    assert stale == MetricReading(t0 + max_age, None, "Stale", "no answer from Prometheus in the last 35s")


def test_a_failure_is_blind_at_once_and_no_first_answer_goes_stale_from_when_it_was_wanted() -> None:
    t0 = datetime(2026, 9, 9, tzinfo=UTC)
    max_age = timedelta(seconds=35)
    failure = MetricReading(t0, None, "Timeout", "no answer within 5s")
    assert current_reading(MetricSample(since=t0, latest=failure), t0, max_age) is failure
    waiting = MetricSample(since=t0)
    assert current_reading(waiting, t0 + max_age, max_age) is None
    never = current_reading(waiting, t0 + timedelta(minutes=5), max_age)
    assert never is not None and (never.at, never.failure_reason) == (t0 + max_age, "Stale")


def test_a_stale_reading_holds_what_the_metric_claimed() -> None:
    t0 = datetime(2026, 9, 9, tzinfo=UTC)
    max_age = timedelta(seconds=35)
    memory = fold_reading(MetricMemory(), MetricReading(t0, 1600.0), 100.0, t0, timedelta(minutes=5))
    late = t0 + timedelta(minutes=10)
    stale = current_reading(MetricSample(since=t0, latest=MetricReading(t0, 1600.0)), late, max_age)
    after = fold_reading(memory, stale, 100.0, late, timedelta(minutes=5))
    assert (after.held, after.failure) == (16, stale)


def test_after_an_outage_longer_than_the_stabilization_a_lower_answer_waits_a_whole_window() -> None:
    t0 = datetime(2026, 9, 9, tzinfo=UTC)
    window = timedelta(minutes=5)
    memory = fold_reading(MetricMemory(), MetricReading(t0, 1600.0), 100.0, t0, window)
    for minute in range(1, 11):  # ten minutes blind
        at = t0 + timedelta(minutes=minute)
        memory = fold_reading(memory, MetricReading(at, None, "Timeout", "5s"), 100.0, at, window)
    assert memory.held == 16
    back = t0 + timedelta(minutes=10, seconds=15)
    memory = fold_reading(memory, MetricReading(back, 200.0), 100.0, back, window)
    assert (memory.held, memory.failure) == (16, None)  # the last blind minute is inside the window
    later = t0 + timedelta(minutes=15, seconds=30)
    memory = fold_reading(memory, MetricReading(later, 200.0), 100.0, later, window)
    assert memory.held == 2
