"""`metric.forecast.mode: curve`: parsing, the history, the curve's floor and its place in `decide_target`."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaign_autoscaler.planning import SpecError, parse_spec
from campaign_autoscaler.planning.curve import (
    CURVE_STEP,
    CurveSettings,
    History,
    change_instants,
    curve_point,
    curve_span,
    default_lookahead,
    history_from_points,
)
from campaign_autoscaler.planning.decision import (
    MetricReading,
    TargetInputs,
    decide_target,
    next_planned_change,
)
from campaign_autoscaler.planning.windows import Window

START = datetime(2026, 9, 9, 0, 0, tzinfo=UTC)
END = datetime(2026, 9, 9, 2, 0, tzinfo=UTC)
WINDOW = Window(START, END)
BEGIN = START - timedelta(minutes=30)  # leadTime 30m
FINISH = END + timedelta(hours=1)  # rampDown 1h
MINUTE = timedelta(minutes=1)
YEAR = timedelta(days=365)
QUERY = 'sum(rate(http_requests_total{app="checkout"}[2m]))'


def spec_with(forecast: dict[str, Any] | None = None, **target: Any):
    """Baseline 4 x 2.5 = floor 10, 100 per replica, lead 30m in 3 steps (lookahead 10m), ramp-down 1h/4."""
    metric: dict[str, Any] = {"query": QUERY, "targetPerReplica": 100}
    if forecast is not None:
        metric["forecast"] = forecast
    return parse_spec(
        {
            "start": "2026-09-09T00:00:00Z",
            "end": "2026-09-09T02:00:00Z",
            "leadTime": "30m",
            "rampUp": {"steps": 3},
            "rampDown": {"duration": "1h", "steps": 4},
            "trafficMultiplier": 2.5,
            "targets": [{"name": "checkout", "metric": metric, **target}],
        }
    )


CURVE = spec_with({"offset": "365d", "mode": "curve"})


def history_of(level: float = 500.0, **overrides: float | None) -> History:
    """A flat history over the whole lifecycle; `m<minute>` (minutes from BEGIN) overrides one slot."""
    count = math.floor((FINISH - BEGIN) / MINUTE) + 1
    values: list[float | None] = [level] * count
    for key, value in overrides.items():
        values[int(key[1:])] = value
    return History(BEGIN, tuple(values))


def settings(
    lookahead: timedelta = timedelta(minutes=10),
    raise_every: timedelta = timedelta(seconds=15),
    stabilization: timedelta = timedelta(minutes=5),
    growth: float = 1.0,
) -> CurveSettings:
    return CurveSettings(growth, 100, lookahead, raise_every, stabilization)


def inputs(spec=CURVE, now: datetime = START, history: History | None = None, **extra: Any) -> TargetInputs:
    return TargetInputs(
        spec=spec,
        target=spec.targets[0],
        window=WINDOW,
        now=now,
        baseline=4,
        max_scale_factor=10.0,
        stabilization=timedelta(minutes=5),
        history=history,
        **extra,
    )


# --- parsing -----------------------------------------------------------------------------------------------
def test_mode_defaults_to_peak_and_lookahead_to_none():
    forecast = spec_with({"offset": "365d"}).targets[0].metric.forecast
    assert forecast.mode == "peak"
    assert not forecast.follows_curve
    assert forecast.lookahead is None


def test_curve_mode_and_lookahead_are_parsed():
    forecast = (
        spec_with({"offset": "52w", "mode": "curve", "lookahead": "5m", "growth": 1.2})
        .targets[0]
        .metric.forecast
    )
    assert forecast.follows_curve
    assert forecast.lookahead == timedelta(minutes=5)
    assert forecast.offset == timedelta(weeks=52)
    assert forecast.growth == 1.2


@pytest.mark.parametrize(
    ("forecast", "field", "words"),
    [
        ({"mode": "curve"}, "metric.forecast.offset", "required with mode: curve"),
        ({"offset": "365d", "mode": "wave"}, "metric.forecast.mode", "must be one of peak, curve"),
        ({"offset": "365d", "mode": 3}, "metric.forecast.mode", "must be one of"),
        ({"offset": "365d", "lookahead": "5m"}, "metric.forecast.lookahead", "only with mode: curve"),
        (
            {"offset": "365d", "mode": "peak", "lookahead": "5m"},
            "metric.forecast.lookahead",
            "only with mode: curve",
        ),
        (
            {"offset": "365d", "mode": "curve", "lookahead": "3h"},
            "metric.forecast.lookahead",
            "3h is longer than the window (2h)",
        ),
        ({"offset": "365d", "mode": "curve", "lookahead": "0s"}, "metric.forecast.lookahead", "must be > 0"),
        ({"offset": "365d", "mode": "curve", "lookahead": "soon"}, "metric.forecast.lookahead", ""),
        ({"offset": "365d", "mode": "curve", "lookahead": 600}, "metric.forecast.lookahead", ""),
        ({"offset": "0d", "mode": "curve"}, "metric.forecast.offset", "must be > 0"),
    ],
)
def test_bad_curve_settings_name_the_field(forecast, field, words):
    with pytest.raises(SpecError) as raised:
        spec_with(forecast)
    assert raised.value.field == f"spec.targets[0].{field}"
    assert words in str(raised.value)


def test_a_lookahead_as_long_as_the_window_is_valid():
    spec = spec_with({"offset": "365d", "mode": "curve", "lookahead": "2h"})
    assert spec.targets[0].metric.forecast.lookahead == timedelta(hours=2)


def test_a_lookahead_longer_than_a_recurring_window_is_invalid():
    raw = {
        "schedule": {"cron": "0 0 9 9 *", "duration": "1h"},
        "targets": [
            {
                "name": "checkout",
                "metric": {
                    "query": QUERY,
                    "targetPerReplica": 10,
                    "forecast": {"offset": "365d", "mode": "curve", "lookahead": "61m"},
                },
            }
        ],
    }
    with pytest.raises(SpecError, match=r"spec.targets\[0\].metric.forecast.lookahead: 1h1m is longer"):
        parse_spec(raw)


def test_default_lookahead_is_lead_time_over_ramp_up_steps():
    assert default_lookahead(CURVE) == timedelta(minutes=10)


# --- the history -------------------------------------------------------------------------------------------
def test_history_moves_points_forward_by_the_offset():
    points = [(BEGIN - YEAR + k * MINUTE, float(k)) for k in range(5)]
    history = history_from_points(points, BEGIN, BEGIN + 4 * MINUTE, YEAR)
    assert history.start == BEGIN
    assert history.values == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert history.gaps == 0
    assert history.describe_gaps() == ""


def test_missing_and_nan_points_are_gaps_and_counted():
    points = [
        (BEGIN - YEAR, 1.0),
        (BEGIN - YEAR + MINUTE, float("nan")),
        (BEGIN - YEAR + 3 * MINUTE, float("inf")),
        (BEGIN - YEAR + 4 * MINUTE, 4.0),
    ]
    history = history_from_points(points, BEGIN, BEGIN + 4 * MINUTE, YEAR)
    assert history.values == (1.0, None, None, None, 4.0)
    assert history.nan_points == 2
    assert history.describe_gaps() == "3 of 5 minutes of history missing (2 NaN)"


def test_points_outside_the_range_are_ignored():
    points = [(BEGIN - YEAR - MINUTE, 9.0), (BEGIN - YEAR, 1.0), (BEGIN - YEAR + 2 * MINUTE, 9.0)]
    history = history_from_points(points, BEGIN, BEGIN + MINUTE, YEAR)
    assert history.values == (1.0, None)


def test_off_grid_points_land_in_the_minute_they_fall_in():
    points = [(BEGIN - YEAR + timedelta(seconds=59), 7.0)]
    assert history_from_points(points, BEGIN, BEGIN + MINUTE, YEAR).values == (7.0, None)


def test_history_refuses_a_reversed_range():
    with pytest.raises(ValueError):
        history_from_points([], BEGIN, BEGIN - MINUTE, YEAR)


# --- the curve's floor -------------------------------------------------------------------------------------
def test_the_floor_covers_the_lookahead():
    history = history_of(500.0, m35=700.0, m45=2000.0)  # m45: 5 minutes after the next 10
    at = START  # m30
    point = curve_point(history, at, BEGIN, FINISH, settings(raise_every=timedelta(0)))
    assert point is not None
    assert point.replicas == 7  # ceil(700 / 100): the 2000 is beyond t + 10m
    assert point.peak == 700.0


def test_growth_multiplies_the_history():
    point = curve_point(history_of(500.0), START, BEGIN, FINISH, settings(growth=1.2))
    assert point is not None and point.replicas == 6  # ceil(600 / 100), exactly


def test_a_value_exactly_on_a_replica_needs_no_extra_one():
    point = curve_point(history_of(300.0), START, BEGIN, FINISH, settings())
    assert point is not None and point.replicas == 3


def test_a_gap_in_the_span_gives_no_curve_floor():
    history = history_of(500.0, m35=None)
    assert curve_point(history, START, BEGIN, FINISH, settings()) is None
    # Once the gap has left the span (past it by more than the stabilization), the curve is back.
    later = START + timedelta(minutes=15)
    assert curve_point(history, later, BEGIN, FINISH, settings()) is not None


def test_a_span_beyond_the_history_gives_no_curve_floor():
    short = History(BEGIN, (500.0,) * 10)
    assert curve_point(short, START, BEGIN, FINISH, settings()) is None


def test_going_down_waits_the_stabilization():
    history = history_of(200.0, m30=1000.0)  # one busy minute at the opening
    plain = settings(raise_every=timedelta(0), stabilization=timedelta(minutes=5))
    assert curve_point(history, START, BEGIN, FINISH, plain).replicas == 10
    # Still held 4 minutes after the busy minute ended ...
    assert curve_point(history, START + timedelta(minutes=5), BEGIN, FINISH, plain).replicas == 10
    # ... and down once a whole stabilization window (on its grid) has passed it.
    assert curve_point(history, START + timedelta(minutes=11), BEGIN, FINISH, plain).replicas == 2


def test_the_span_always_contains_now_to_now_plus_lookahead():
    every = settings(raise_every=timedelta(seconds=45), stabilization=timedelta(minutes=7))
    at = BEGIN
    while at < FINISH:
        span_start, span_end = curve_span(at, BEGIN, FINISH, every)
        assert span_start <= at
        assert span_end >= min(FINISH, at + every.lookahead)
        at += timedelta(seconds=13)


def test_rises_come_on_the_metrics_grid_and_falls_on_the_stabilization_grid():
    values = {f"m{k}": 100.0 * (1 + (k * 7919) % 23) for k in range(0, 211)}
    history = history_of(100.0, **values)
    every = settings(raise_every=timedelta(seconds=90), stabilization=timedelta(minutes=4))
    previous = None
    at = BEGIN
    while at < FINISH:
        point = curve_point(history, at, BEGIN, FINISH, every)
        assert point is not None
        if previous is not None and point.replicas > previous:
            assert ((at - BEGIN) / timedelta(seconds=90)).is_integer(), at
        if previous is not None and point.replicas < previous:
            assert ((at - BEGIN) / timedelta(minutes=4)).is_integer(), at
        previous = point.replicas
        at += timedelta(seconds=15)


def test_the_span_is_clipped_to_the_lifecycle():
    span_start, span_end = curve_span(FINISH - MINUTE, BEGIN, FINISH, settings())
    assert span_end == FINISH
    span_start, span_end = curve_span(BEGIN, BEGIN, FINISH, settings())
    assert span_start == BEGIN


def test_change_instants_follow_the_grids():
    every = settings(raise_every=timedelta(minutes=1), stabilization=timedelta(minutes=5))
    instants = change_instants(BEGIN + timedelta(seconds=30), BEGIN, FINISH, every, history_of())
    assert instants[0] == BEGIN + MINUTE
    assert instants[-1] < FINISH
    assert all(b > a for a, b in itertools.pairwise(instants))


def test_change_instants_without_grids_follow_the_history_steps():
    every = settings(raise_every=timedelta(0), stabilization=timedelta(0))
    instants = change_instants(START, BEGIN, FINISH, every, history_of())
    assert START + MINUTE in instants  # the span's start leaves a minute
    assert START + MINUTE - timedelta(minutes=10) not in instants  # only after now
    assert START + timedelta(minutes=1) - timedelta(minutes=10) + timedelta(minutes=30) in instants


# --- in the decision ---------------------------------------------------------------------------------------
def test_the_curve_replaces_the_multiplier_floor():
    decision = decide_target(inputs(history=history_of(500.0)))
    assert decision.wanted == 5  # not the multiplier's 10
    assert decision.planned == 5
    assert decision.floor.replicas == 10  # the plain floor is still what a gap falls back on
    assert decision.reason.startswith("curve 5 = ceil(last campaign's 500 / 100)")


def test_no_history_yet_is_the_plain_timeline():
    decision = decide_target(inputs(history=None))
    assert decision.wanted == 10
    assert "no history yet: plain floor" in decision.reason


def test_a_gap_is_the_plain_timeline_for_that_stretch():
    ramping = START - timedelta(minutes=25)  # ramp-up step 1/3: 4 + ceil(6 / 3) = 6
    history = history_of(500.0, m5=None)
    decision = decide_target(inputs(now=ramping, history=history))
    assert decision.wanted == 6
    assert "gap in the history: plain floor" in decision.reason


def test_never_below_the_baseline():
    decision = decide_target(inputs(history=history_of(50.0)))
    assert decision.wanted == 4
    assert "held at 4 (baseline 4" in decision.reason


def test_clamped_to_max_replicas():
    spec = spec_with({"offset": "365d", "mode": "curve"}, maxReplicas=8)
    decision = decide_target(inputs(spec, history=history_of(5000.0)))
    assert decision.wanted == 8


def test_raised_to_min_replicas():
    spec = spec_with({"offset": "365d", "mode": "curve"}, minReplicas=7)
    assert decide_target(inputs(spec, history=history_of(100.0))).wanted == 7


def test_the_live_metric_applies_on_top():
    reading = MetricReading(START, 1250.0)
    decision = decide_target(inputs(history=history_of(500.0), reading=reading))
    assert decision.planned == 5
    assert decision.wanted == 13
    assert "metric 1250 wants 13" in decision.reason


def test_a_failed_reading_never_lowers_the_curve():
    reading = MetricReading(START, None, "Timeout", "no answer")
    decision = decide_target(inputs(history=history_of(500.0), reading=reading))
    assert decision.wanted == 5


def test_no_claim_outside_the_lifecycle():
    before = decide_target(inputs(now=BEGIN - MINUTE, history=history_of(500.0)))
    after = decide_target(inputs(now=FINISH, history=history_of(500.0)))
    assert before.wanted is None and after.wanted is None


def test_peak_mode_ignores_a_history():
    spec = spec_with({"offset": "365d"})
    assert decide_target(inputs(spec, history=history_of(500.0))).wanted == 10


def test_a_restart_mid_window_decides_the_same():
    history = history_of(300.0, m40=900.0)
    at = START + timedelta(minutes=12, seconds=30)
    first = decide_target(inputs(now=at, history=history))
    again = decide_target(inputs(now=at, history=history, claim_in_force=first.wanted))
    assert first.wanted == again.wanted == 9


def test_the_next_planned_change_is_the_first_instant_the_plan_moves():
    history = history_of(300.0, m45=900.0)  # 15 minutes after the opening
    change = next_planned_change(inputs(now=START, history=history))
    # With a 10m lookahead and the 15 s metrics grid, the rise comes at 15m - 10m - 15s.
    assert change == (START + timedelta(minutes=4, seconds=45), 9)


def test_no_next_change_without_a_curve():
    assert next_planned_change(inputs(history=None)) is None
    assert next_planned_change(inputs(spec_with({"offset": "365d"}), history=history_of())) is None


def test_the_plan_ends_at_the_baseline_after_a_flat_curve():
    change = next_planned_change(inputs(now=START, history=history_of(500.0)))
    assert change is None  # 5 until the end of the ramp-down; the claim then goes


def test_curve_rises_are_ready_before_the_demand_with_the_lookahead():
    """Replayed minute by minute: at every instant the plan covers the history over the next lookahead."""
    values = {f"m{k}": 100.0 + 40.0 * k for k in range(0, 60)}
    history = history_of(300.0, **values)
    at = BEGIN
    while at < FINISH - timedelta(minutes=10):
        decision = decide_target(inputs(now=at, history=history))
        first, last = history.index(at), history.index(at + timedelta(minutes=10))
        needed = math.ceil(max(v for v in history.values[first : last + 1] if v is not None) / 100)
        assert decision.wanted >= max(4, min(needed, 40)), at
        at += CURVE_STEP / 2


@pytest.mark.parametrize(
    ("value", "growth", "per_replica", "replicas"),
    [
        (1000.0, 1.1, 100, 11),  # 1100.0000000000002 in floats: exactly 11
        (160.0, 1.0, 80, 2),
        (160.0001, 1.0, 80, 3),
        (999.9, 1.0, 100, 10),
        (0.3, 3.0, 0.9, 1),  # 0.8999999999999999 / 0.9 in floats
        (-5.0, 1.0, 10, 0),
        (1e30, 1.0, 1, 2**31 - 1),
    ],
)
def test_curve_replicas_are_exact_where_floats_are_not(value, growth, per_replica, replicas):
    from campaign_autoscaler.planning.curve import CurveTable
    from campaign_autoscaler.planning.metrics import forecast_replicas

    assert forecast_replicas(value, growth, per_replica) == replicas
    history = History(BEGIN, (value,) * 300)
    every = CurveSettings(growth, per_replica, timedelta(minutes=1), timedelta(0), timedelta(0))
    assert CurveTable.of(history, every).replicas_at(START, BEGIN, FINISH, every) == replicas


def test_a_claim_the_plain_plan_made_before_the_curve_was_read_is_not_taken_for_the_metric():
    """The first pass had no curve yet and claimed the plain ramp step; the curve, read since, wants less."""
    ramping = BEGIN + timedelta(seconds=20)  # ramp-up 1/3: 4 + ceil(6 / 3) = 6
    failed = MetricReading(ramping, None, "NoSeries", "empty vector")
    decision = decide_target(inputs(now=ramping, history=history_of(300.0), claim_in_force=6, reading=failed))
    assert decision.wanted == 4  # the curve's 3, held at the baseline; not a blind hold of 6
