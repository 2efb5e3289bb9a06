"""The window's tally and summary: pure folds of observations, and the advice they give."""

from datetime import UTC, datetime, timedelta

from campaign_autoscaler.planning import Window
from campaign_autoscaler.planning.summary import (
    Observation,
    Tally,
    TargetPlan,
    finish,
    headline,
    observe,
    recommend,
    summarize,
)

T0 = datetime(2026, 9, 9, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(minutes=10))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fold(*observations: Observation) -> Tally:
    tally = Tally()
    for seen in observations:
        tally = observe(tally, seen, WINDOW)
    return tally


def test_nothing_claimed_is_nothing_observed():
    tally = fold(Observation(at(-600), None, 4), Observation(at(900), None, 4))
    assert not tally.observed
    assert recommend(tally, TargetPlan(lead_time=timedelta(minutes=5)), None).startswith("not observed")


def test_peaks_over_the_lifecycle_and_ready_at_start():
    tally = fold(
        Observation(at(-60), 6, 4, metric=20.0, demand=2),
        Observation(at(0.02), 8, 8, metric=30.0, demand=3),
        Observation(at(120), 12, 8, metric=115.0, demand=12),
        Observation(at(124), 12, 12, metric=90.0, demand=9),
        Observation(at(700), 6, 12),
    )
    assert (tally.peak_desired, tally.peak_ready, tally.peak_metric) == (12, 12, 115.0)
    assert tally.ready_at_start is True
    # 0.02 s of the ramp's shortfall ran into the window before the pass that opened it, then 4 s of demand.
    assert round(tally.short_seconds, 2) == 4.02
    assert tally.short_since is None


def test_a_shortfall_from_before_the_window_counts_from_its_start():
    tally = fold(
        Observation(at(-30), 8, 2),  # ramping: short, but not yet in the window
        Observation(at(10), 8, 6),
        Observation(at(25), 8, 8),
    )
    assert tally.ready_at_start is False
    assert tally.short_seconds == 25.0


def test_ready_below_the_metrics_demand_is_short_even_at_the_clamp():
    # maxReplicas 10 clamps the claim; the metric wants 14: Ready 10 is still short of the demand.
    tally = fold(
        Observation(at(5), 10, 10, metric=140.0, demand=14),
        Observation(at(15), 10, 10, metric=90.0, demand=9),
    )
    assert tally.short_seconds == 10.0


def test_a_stretch_open_at_the_end_is_clipped_to_the_window():
    tally = fold(Observation(at(590), 8, 6))
    assert tally.short_since == at(590)
    assert finish(tally, WINDOW).short_seconds == 10.0
    # The pass after the end closes it the same way.
    assert observe(tally, Observation(at(640), 8, 6), WINDOW).short_seconds == 10.0
    assert observe(tally, Observation(at(640), None, 6), WINDOW).short_seconds == 10.0


def test_a_stretch_survives_being_read_back_mid_way():
    tally = fold(Observation(at(100), 8, 4))
    tally = observe(Tally(**vars(tally)), Observation(at(103.5), 8, 8), WINDOW)
    assert tally.short_seconds == 3.5


def test_recommendation_for_a_lead_time_too_short_and_a_floor_below_the_peak():
    tally = fold(
        Observation(at(0.02), 10, 10, metric=1312.5, demand=17, floor=10),
        Observation(at(30), 17, 17, floor=10),
    )
    plan = TargetPlan(lead_time=timedelta(minutes=10), target_per_replica=80)
    advice = recommend(tally, plan, ready_seconds=680)
    assert advice == (
        "leadTime >= 12m: pods took 11m20s to be Ready; "
        "floor 10 is below this peak (1312.5) x 1.2: set replicas >= 20"
    )


def test_recommendation_when_the_floor_covers_the_peak_with_the_forecasts_growth():
    tally = fold(Observation(at(0.02), 14, 14, metric=800.0, demand=10, floor=14))
    plan = TargetPlan(lead_time=timedelta(minutes=15), target_per_replica=80, growth=1.3)
    assert recommend(tally, plan, ready_seconds=540) == (
        "leadTime 15m was enough: pods took 9m to be Ready; floor 14 covers this peak (800) x 1.3"
    )


def test_recommendation_without_a_metric_and_never_ready():
    tally = fold(Observation(at(0.02), 8, 5), Observation(at(65), 8, 8))
    plan = TargetPlan(lead_time=timedelta(minutes=1))
    assert recommend(tally, plan, ready_seconds=None) == (
        "the floor was never seen fully Ready: look at what held the pods before the next window; "
        "floor 8 was Ready late: 1m5s short in the window"
    )


def test_summary_and_headline():
    plan = TargetPlan(lead_time=timedelta(minutes=1))
    calm = summarize("search", fold(Observation(at(0.02), 8, 8)), WINDOW, plan, 40.0)
    short = summarize(
        "checkout", fold(Observation(at(0.02), 8, 6), Observation(at(30), 8, 8)), WINDOW, plan, 90.0
    )
    assert (calm.short_seconds, calm.ready_at_start, calm.observed_ready_seconds) == (0.0, True, 40.0)
    assert (short.short_seconds, short.ready_at_start) == (30.0, False)
    assert headline("sale", [calm, short]) == (
        "Window of CampaignEvent sale completed: 1/2 target(s) Ready at start, "
        "1 short in the window (worst checkout: 30s below the demand)"
    )
    assert headline("sale", [calm]).endswith("1/1 target(s) Ready at start, no shortfall in the window")
