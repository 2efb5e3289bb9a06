"""A target scaled by a KEDA ScaledObject: its bounds are raised on the ScaledObject and restored exactly
(a bound the ScaledObject left out stays out); a paused ScaledObject is left alone."""

from __future__ import annotations

import json

import pytest

from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    Baseline,
    HpaBounds,
    TargetState,
    dump_baseline,
    parse_baseline,
    plan_claim,
)
from campaign_autoscaler.planning.scaledobject import SCALED_OBJECT_KIND, scaled_object_bounds

SALE, FLASH = "shop/sale", "shop/flash"


def scaled_object(min_count: int | None, max_count: int | None, paused: bool = False) -> HpaBounds:
    return HpaBounds("checkout", min_count, max_count, SCALED_OBJECT_KIND, paused)


def test_the_first_claim_records_the_bounds_as_they_were_absent_ones_as_null():
    plan = plan_claim(TargetState(replicas=3, hpa=scaled_object(None, 8)), SALE, 12, "uid")
    assert json.loads(plan.annotations[BASELINE_ANNOTATION]) == {
        "scaledObject": "checkout",
        "minReplicaCount": None,
        "maxReplicaCount": 8,
        "replicas": 3,
    }
    assert plan.hpa_bounds == (12, 12)
    assert plan.replicas is None  # never the Deployment: KEDA's HPA scales it
    assert (plan.replicas_before, plan.replicas_after, plan.effective) == (0, 12, 12)


def test_a_max_above_the_floor_is_left_and_an_absent_max_counts_as_keda_s_default():
    assert scaled_object_bounds(2, None, 12) == (12, None)
    assert scaled_object_bounds(2, 50, 12) == (12, 50)
    assert scaled_object_bounds(2, None, 150) == (150, 150)
    assert scaled_object_bounds(20, 50, 12) == (20, 50)
    assert scaled_object_bounds(None, None, 0) == (None, None)


def test_the_last_release_restores_both_bounds_exactly_absent_ones_removed():
    baseline = Baseline(3, "checkout", None, None, SCALED_OBJECT_KIND)
    state = TargetState(3, baseline, {SALE: 12}, {SALE: "uid"}, scaled_object(12, 12))
    plan = plan_claim(state, SALE, None, None)
    assert plan.hpa_bounds == (None, None)
    assert plan.released
    assert set(plan.annotations.values()) == {None}
    assert (plan.replicas_before, plan.replicas_after) == (12, 0)


def test_a_rewrite_below_the_floor_is_raised_again():
    baseline = Baseline(3, "checkout", 2, 10, SCALED_OBJECT_KIND)
    state = TargetState(3, baseline, {SALE: 12}, {SALE: "uid"}, scaled_object(2, 12))
    plan = plan_claim(state, SALE, 12, "uid")
    assert plan.annotations is None
    assert plan.hpa_bounds == (12, 12)


def test_two_events_take_the_max_on_the_scaled_object():
    baseline = Baseline(3, "checkout", 2, 10, SCALED_OBJECT_KIND)
    state = TargetState(3, baseline, {SALE: 12}, {SALE: "uid"}, scaled_object(12, 12))
    assert plan_claim(state, FLASH, 15, "uid2").hpa_bounds == (15, 15)
    assert plan_claim(state, FLASH, 5, "uid2").hpa_bounds is None


@pytest.mark.parametrize("claimed", [False, True])
def test_a_paused_scaled_object_is_left_alone(claimed: bool):
    baseline = Baseline(3, "checkout", 2, 10, SCALED_OBJECT_KIND) if claimed else None
    claims = {SALE: 12} if claimed else {}
    state = TargetState(3, baseline, claims, {}, scaled_object(2, 10, paused=True))
    for wanted in (12, 20, None):
        plan = plan_claim(state, SALE, wanted, "uid")
        assert not plan.writes
        assert plan.paused
        assert dict(plan.claims) == claims
        assert (plan.replicas_before, plan.replicas_after) == (2, 2)


def test_a_baseline_through_a_scaled_object_reads_back_as_written():
    for bounds in ((None, None), (0, 7), (2, None)):
        baseline = Baseline(4, "checkout", *bounds, scaler_kind=SCALED_OBJECT_KIND)
        assert parse_baseline(dump_baseline(baseline)) == baseline


@pytest.mark.parametrize(
    "text",
    [
        '{"scaledObject": "", "minReplicaCount": 1, "maxReplicaCount": 2, "replicas": 1}',
        '{"scaledObject": "so", "maxReplicaCount": 2, "replicas": 1}',
        '{"scaledObject": "so", "minReplicaCount": -1, "maxReplicaCount": 2, "replicas": 1}',
    ],
)
def test_a_broken_scaled_object_baseline_is_refused_naming_the_annotation(text: str):
    with pytest.raises(ValueError, match=BASELINE_ANNOTATION):
        parse_baseline(text)


def test_an_hpa_of_the_same_name_is_not_the_scaled_object_the_baseline_names():
    baseline = Baseline(3, "checkout", 2, 10, SCALED_OBJECT_KIND)
    state = TargetState(3, baseline, {SALE: 12}, {SALE: "uid"}, HpaBounds("checkout", 2, 10))
    plan = plan_claim(state, SALE, 12, "uid")
    assert plan.hpa is None
    assert plan.hpa_bounds is None
