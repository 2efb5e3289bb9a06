"""`plan_claim`: what setting (or dropping) one event's claim writes on a target: the baseline, claims and
owners annotations, the Deployment's replicas or the HPA's bounds."""

from __future__ import annotations

import json

from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CAMPAIGN_ANNOTATIONS,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
    Baseline,
    HpaBounds,
    TargetState,
    plan_claim,
)

SALE, FLASH = "shop/sale", "shop/flash"
SALE_UID, FLASH_UID = "uid-sale", "uid-flash"


def annotations_of(plan) -> dict:
    """The annotations as JSON documents (None: removed)."""
    return {key: json.loads(value) if value is not None else None for key, value in plan.annotations.items()}


def claimed_by_sale(replicas: int = 10, claim: int = 10, baseline: int = 4) -> TargetState:
    return TargetState(
        replicas=replicas, baseline=Baseline(baseline), claims={SALE: claim}, owners={SALE: SALE_UID}
    )


def test_the_annotation_names():
    assert OWNERS_ANNOTATION == "autoscaling.campaigns.dev/claim-uids"
    assert set(CAMPAIGN_ANNOTATIONS) == {BASELINE_ANNOTATION, CLAIMS_ANNOTATION, OWNERS_ANNOTATION}


def test_the_first_claim_records_the_baseline_and_the_owner():
    plan = plan_claim(TargetState(replicas=4), SALE, 10, SALE_UID)
    assert annotations_of(plan) == {
        BASELINE_ANNOTATION: {"replicas": 4},
        CLAIMS_ANNOTATION: {SALE: 10},
        OWNERS_ANNOTATION: {SALE: SALE_UID},
    }
    assert plan.replicas == 10
    assert plan.hpa_bounds is None
    assert plan.baseline == Baseline(4)
    assert dict(plan.claims) == {SALE: 10}
    assert (plan.replicas_before, plan.replicas_after, plan.effective) == (4, 10, 10)
    assert plan.writes
    assert not plan.released


def test_a_claim_at_the_baseline_is_recorded_without_scaling():
    plan = plan_claim(TargetState(replicas=4), SALE, 4, SALE_UID)
    assert plan.replicas is None
    assert plan.annotations is not None
    assert annotations_of(plan)[CLAIMS_ANNOTATION] == {SALE: 4}


def test_a_second_event_takes_the_max():
    plan = plan_claim(claimed_by_sale(), FLASH, 14, FLASH_UID)
    assert plan.replicas == 14
    assert annotations_of(plan) == {
        BASELINE_ANNOTATION: {"replicas": 4},  # the first claim's baseline, not today's 10
        CLAIMS_ANNOTATION: {SALE: 10, FLASH: 14},
        OWNERS_ANNOTATION: {SALE: SALE_UID, FLASH: FLASH_UID},
    }
    assert plan.effective == 14


def test_a_second_event_below_the_first_leaves_the_replicas():
    plan = plan_claim(claimed_by_sale(), FLASH, 8, FLASH_UID)
    assert plan.replicas is None
    assert plan.effective == 10
    assert plan.replicas_after == 10
    assert annotations_of(plan)[CLAIMS_ANNOTATION] == {SALE: 10, FLASH: 8}


def test_lowering_the_highest_claim_steps_down_to_the_next_one():
    state = TargetState(
        replicas=14,
        baseline=Baseline(4),
        claims={SALE: 10, FLASH: 14},
        owners={SALE: SALE_UID, FLASH: FLASH_UID},
    )
    plan = plan_claim(state, FLASH, 8, FLASH_UID)
    assert plan.replicas == 10
    assert plan.effective == 10


def test_releasing_one_of_two_claims_keeps_the_others_and_its_owner():
    state = TargetState(
        replicas=14,
        baseline=Baseline(4),
        claims={SALE: 10, FLASH: 14},
        owners={SALE: SALE_UID, FLASH: FLASH_UID},
    )
    plan = plan_claim(state, FLASH, None, FLASH_UID)
    assert plan.replicas == 10
    assert not plan.released
    assert annotations_of(plan) == {
        BASELINE_ANNOTATION: {"replicas": 4},
        CLAIMS_ANNOTATION: {SALE: 10},
        OWNERS_ANNOTATION: {SALE: SALE_UID},
    }


def test_releasing_the_last_claim_restores_the_baseline_and_removes_every_annotation():
    plan = plan_claim(claimed_by_sale(), SALE, None, SALE_UID)
    assert plan.annotations == {
        BASELINE_ANNOTATION: None,
        CLAIMS_ANNOTATION: None,
        OWNERS_ANNOTATION: None,
    }
    assert plan.replicas == 4
    assert plan.released
    assert (plan.replicas_before, plan.replicas_after, plan.effective) == (10, 4, 4)


def test_the_baseline_is_restored_exactly_whatever_the_target_was_scaled_to():
    # Someone (an HPA, a person) raised the target above the claim meanwhile: the release restores exactly.
    plan = plan_claim(claimed_by_sale(replicas=17), SALE, None, SALE_UID)
    assert plan.replicas == 4
    # ... and a target already back at its baseline only loses the annotations.
    plan = plan_claim(claimed_by_sale(replicas=4), SALE, None, SALE_UID)
    assert plan.replicas is None
    assert plan.annotations == dict.fromkeys(CAMPAIGN_ANNOTATIONS)


def test_a_baseline_of_zero_is_restored():
    plan = plan_claim(claimed_by_sale(replicas=10, baseline=0), SALE, None, SALE_UID)
    assert plan.replicas == 0


def test_a_floor_not_a_ceiling_replicas_above_the_claims_are_left_alone():
    plan = plan_claim(TargetState(replicas=20), SALE, 10, SALE_UID)
    assert plan.replicas is None
    assert plan.replicas_after == 20
    assert plan.effective == 20  # the baseline is what the target had when first claimed
    assert annotations_of(plan)[BASELINE_ANNOTATION] == {"replicas": 20}
    # A claim already in force on a target someone raised further: nothing at all to write.
    plan = plan_claim(claimed_by_sale(replicas=25), SALE, 10, SALE_UID)
    assert not plan.writes


def test_lowering_a_claim_leaves_replicas_someone_else_raised():
    plan = plan_claim(claimed_by_sale(replicas=25, claim=12), SALE, 10, SALE_UID)
    assert plan.replicas is None
    assert annotations_of(plan)[CLAIMS_ANNOTATION] == {SALE: 10}


def test_a_target_pushed_below_its_claim_is_raised_again_without_an_annotation_write():
    plan = plan_claim(claimed_by_sale(replicas=6), SALE, 10, SALE_UID)
    assert plan.replicas == 10
    assert plan.annotations is None


def test_an_hpa_backed_target_gets_bounds_not_replicas():
    hpa = HpaBounds("checkout", 2, 10)
    plan = plan_claim(TargetState(replicas=3, hpa=hpa), SALE, 12, SALE_UID)
    assert plan.replicas is None
    assert plan.hpa_bounds == (12, 12)  # maxReplicas raised too: it was below the claim
    assert plan.hpa == hpa
    assert annotations_of(plan)[BASELINE_ANNOTATION] == {
        "hpa": "checkout",
        "minReplicas": 2,
        "maxReplicas": 10,
        "replicas": 3,
    }
    assert (plan.replicas_before, plan.replicas_after, plan.effective) == (2, 12, 12)


def test_an_hpa_max_above_the_claim_is_kept():
    plan = plan_claim(TargetState(replicas=3, hpa=HpaBounds("checkout", 2, 50)), SALE, 12, SALE_UID)
    assert plan.hpa_bounds == (12, 50)


def test_releasing_an_hpa_backed_target_restores_its_bounds():
    baseline = Baseline(3, hpa_name="checkout", hpa_min_replicas=2, hpa_max_replicas=10)
    state = TargetState(
        replicas=15,
        baseline=baseline,
        claims={SALE: 12},
        owners={SALE: SALE_UID},
        hpa=HpaBounds("checkout", 12, 12),
    )
    plan = plan_claim(state, SALE, None, SALE_UID)
    assert plan.hpa_bounds == (2, 10)
    assert plan.replicas is None
    assert plan.annotations == dict.fromkeys(CAMPAIGN_ANNOTATIONS)
    assert plan.released
    assert plan.replicas_after == 2


def test_an_hpa_bounds_already_in_place_are_not_written_again():
    baseline = Baseline(3, hpa_name="checkout", hpa_min_replicas=2, hpa_max_replicas=10)
    state = TargetState(
        replicas=12,
        baseline=baseline,
        claims={SALE: 12},
        owners={SALE: SALE_UID},
        hpa=HpaBounds("checkout", 12, 12),
    )
    assert not plan_claim(state, SALE, 12, SALE_UID).writes


def test_the_way_a_target_is_scaled_is_fixed_by_its_first_claim():
    # Claimed as a plain Deployment; an HPA appeared later: the Deployment path stays, so that the
    # restore matches the baseline.
    state = TargetState(
        replicas=10,
        baseline=Baseline(4),
        claims={SALE: 10},
        owners={SALE: SALE_UID},
        hpa=HpaBounds("checkout", 2, 10),
    )
    plan = plan_claim(state, SALE, 12, SALE_UID)
    assert plan.hpa_bounds is None
    assert plan.hpa is None
    assert plan.replicas == 12


def test_an_owners_only_difference_is_written():
    # A claim written before owners were recorded: the same claim now records its event's uid.
    legacy = TargetState(replicas=10, baseline=Baseline(4), claims={SALE: 10})
    plan = plan_claim(legacy, SALE, 10, SALE_UID)
    assert plan.writes
    assert plan.replicas is None
    assert annotations_of(plan) == {
        BASELINE_ANNOTATION: {"replicas": 4},
        CLAIMS_ANNOTATION: {SALE: 10},
        OWNERS_ANNOTATION: {SALE: SALE_UID},
    }


def test_an_unchanged_claim_writes_nothing():
    plan = plan_claim(claimed_by_sale(), SALE, 10, SALE_UID)
    assert not plan.writes
    assert plan.annotations is None
    assert plan.replicas is None


def test_a_new_uid_for_the_same_claim_is_written():
    plan = plan_claim(claimed_by_sale(), SALE, 10, "uid-sale-recreated")
    assert annotations_of(plan)[OWNERS_ANNOTATION] == {SALE: "uid-sale-recreated"}


def test_the_owners_annotation_is_removed_when_no_claim_left_records_one():
    state = TargetState(
        replicas=14,
        baseline=Baseline(4),
        claims={SALE: 10, FLASH: 14},
        owners={FLASH: FLASH_UID},  # the sale's claim is a legacy one
    )
    plan = plan_claim(state, FLASH, None, FLASH_UID)
    assert plan.annotations is not None
    assert plan.annotations[OWNERS_ANNOTATION] is None
    assert annotations_of(plan)[CLAIMS_ANNOTATION] == {SALE: 10}


def test_releasing_a_target_never_claimed_writes_nothing():
    plan = plan_claim(TargetState(replicas=4), SALE, None, SALE_UID)
    assert not plan.writes
    assert plan.annotations is None
    assert plan.replicas is None
    assert plan.released
    assert (plan.replicas_before, plan.replicas_after) == (4, 4)


def test_releasing_an_hpa_backed_target_never_claimed_writes_nothing():
    plan = plan_claim(TargetState(replicas=3, hpa=HpaBounds("checkout", 2, 10)), SALE, None, SALE_UID)
    assert not plan.writes
    assert plan.hpa_bounds is None


def test_releasing_a_claim_of_another_event_keeps_ours():
    plan = plan_claim(claimed_by_sale(), FLASH, None, FLASH_UID)
    assert not plan.writes


def test_a_leftover_baseline_without_claims_is_cleaned_up_on_release():
    # A crash between two writes can leave the baseline alone on a target.
    plan = plan_claim(TargetState(replicas=4, baseline=Baseline(4)), SALE, None, SALE_UID)
    assert plan.annotations == dict.fromkeys(CAMPAIGN_ANNOTATIONS)
    assert plan.replicas is None


def test_an_event_without_a_claim_does_not_undo_a_release_in_flight():
    # The last claim's release restored the HPA first; its annotations are still there for one more write.
    baseline = Baseline(3, hpa_name="checkout", hpa_min_replicas=2, hpa_max_replicas=10)
    halfway = TargetState(
        replicas=3,
        baseline=baseline,
        claims={SALE: 12},
        owners={SALE: SALE_UID},
        hpa=HpaBounds("checkout", 2, 10),
    )
    plan = plan_claim(halfway, FLASH, None, FLASH_UID)
    assert not plan.writes
    assert plan.replicas_after == plan.replicas_before == 2
    # A plain Deployment pushed below another event's claim is left to that event's own pass.
    below = claimed_by_sale(replicas=4, claim=10)
    assert not plan_claim(below, FLASH, None, FLASH_UID).writes


def test_campaign_annotations_without_any_claim_are_finished_by_anyone():
    leftover = TargetState(replicas=7, baseline=Baseline(4), claims={}, owners={})
    plan = plan_claim(leftover, FLASH, None, FLASH_UID)
    assert plan.replicas == 4
    assert plan.annotations == dict.fromkeys(CAMPAIGN_ANNOTATIONS)
    assert plan.released
