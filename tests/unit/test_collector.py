"""The orphan-claims collector: which claims are suspects, which suspects are orphans (as the API server
says), and the releases it makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaign_autoscaler.handlers.collector import (
    EventDirectory,
    Suspect,
    collect,
    finalizers_turn,
    orphaned,
    suspects,
)
from campaign_autoscaler.handlers.runtime import OperatorConfig, Runtime
from campaign_autoscaler.planning.claims import (
    BASELINE_ANNOTATION,
    CLAIMS_ANNOTATION,
    OWNERS_ANNOTATION,
    Baseline,
    dump_baseline,
    dump_claims,
)
from tests.unit.fakes import NAMESPACE, Clock, FakeKube, deployment_body, event_body

NOW = datetime(2026, 9, 9, 12, 0, tzinfo=UTC)
REMEMBER = timedelta(minutes=2)


def claimed(
    name: str, claims: dict[str, int], owners: dict[str, str] | None = None, baseline: int = 2
) -> dict:
    annotations = {
        BASELINE_ANNOTATION: dump_baseline(Baseline(baseline)),
        CLAIMS_ANNOTATION: dump_claims(claims),
    }
    if owners:
        annotations[OWNERS_ANNOTATION] = dump_claims(owners)
    return deployment_body(name, max([baseline, *claims.values()]), annotations=annotations)


def directory_of(*known: tuple[str, str, bool]) -> EventDirectory:
    directory = EventDirectory()
    for key, uid, deleting in known:
        directory.seen(key, uid, deleting)
    return directory


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def runtime(kube: FakeKube) -> Runtime:
    return Runtime(config=OperatorConfig(), kube=kube, clock=Clock(NOW))


# --- the directory ------------------------------------------------------------------------------------------
def test_the_directory_knows_live_events_by_uid():
    directory = directory_of(("shop/sale", "uid-1", False), ("shop/going", "uid-2", True))
    assert directory.alive("shop/sale", "uid-1", NOW)
    assert directory.alive("shop/sale", None, NOW)  # a legacy claim: any event of that name
    assert not directory.alive("shop/sale", "uid-other", NOW)
    assert not directory.alive("shop/going", "uid-2", NOW)
    assert not directory.alive("shop/unknown", None, NOW)


def test_the_directory_forgets_an_event_only_under_its_own_uid():
    directory = directory_of(("shop/sale", "uid-new", False))
    directory.gone("shop/sale", "uid-old")  # a late DELETED of the previous event of that name
    assert directory.alive("shop/sale", "uid-new", NOW)
    directory.gone("shop/sale", "uid-new")
    assert not directory.alive("shop/sale", None, NOW)


# --- suspects -----------------------------------------------------------------------------------------------
def test_suspects_are_the_claims_not_known_alive_under_their_uid(kube):
    kube.add_deployment(claimed("a-live", {"shop/live": 5}, {"shop/live": "uid-live"}))
    kube.add_deployment(claimed("b-unknown", {"shop/unknown": 5}, {"shop/unknown": "uid-unknown"}))
    kube.add_deployment(claimed("c-deleting", {"shop/going": 5}, {"shop/going": "uid-going"}))
    kube.add_deployment(claimed("d-recreated", {"shop/recreated": 5}, {"shop/recreated": "uid-old"}))
    kube.add_deployment(claimed("e-legacy-live", {"shop/legacy-live": 5}))
    kube.add_deployment(claimed("f-legacy-gone", {"shop/legacy-gone": 5}))
    kube.add_deployment(deployment_body("g-unclaimed", 3))
    directory = directory_of(
        ("shop/live", "uid-live", False),
        ("shop/going", "uid-going", True),
        ("shop/recreated", "uid-new", False),
        ("shop/legacy-live", "uid-legacy", False),
    )
    assert suspects(kube.snapshot(), directory, NOW) == [
        Suspect("b-unknown", "shop/unknown", "uid-unknown"),
        Suspect("c-deleting", "shop/going", "uid-going"),
        Suspect("d-recreated", "shop/recreated", "uid-old"),
        Suspect("f-legacy-gone", "shop/legacy-gone", None),
    ]


def test_each_claim_of_a_shared_target_is_judged_on_its_own(kube):
    kube.add_deployment(
        claimed("api", {"shop/live": 5, "shop/gone": 8}, {"shop/live": "uid-live", "shop/gone": "uid-gone"})
    )
    directory = directory_of(("shop/live", "uid-live", False))
    assert suspects(kube.snapshot(), directory, NOW) == [Suspect("api", "shop/gone", "uid-gone")]


# --- orphans ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "owner", "reason"),
    [
        (None, "uid-1", "it no longer exists"),
        (None, None, "it no longer exists"),
        (event_body("sale", "uid-1", deleting=True), "uid-1", "it is being deleted"),
        (event_body("sale", "uid-1", deleting=True), None, "it is being deleted"),
        (
            event_body("sale", "uid-2"),
            "uid-1",
            "it was re-created (uid uid-2, the claim was made by uid-1)",
        ),
        (event_body("sale", "uid-1"), "uid-1", None),
        (event_body("sale", "uid-2"), None, None),  # a legacy claim of a live event is its claim
    ],
    ids=["gone", "gone-legacy", "deleting", "deleting-legacy", "recreated", "alive", "alive-legacy"],
)
def test_orphaned_says_why(event, owner, reason):
    assert orphaned(event, owner) == reason


# --- collect ------------------------------------------------------------------------------------------------
def test_collect_releases_only_the_orphans(kube, runtime):
    kube.add_deployment(claimed("a-live", {"shop/live": 5}, {"shop/live": "uid-live"}))
    kube.add_deployment(claimed("b-gone", {"shop/gone": 6}, {"shop/gone": "uid-gone"}))
    kube.add_deployment(claimed("c-deleting", {"shop/going": 7}, {"shop/going": "uid-going"}))
    kube.add_deployment(claimed("d-recreated", {"shop/recreated": 8}, {"shop/recreated": "uid-old"}))
    kube.add_deployment(claimed("e-unknown-but-alive", {"shop/fresh": 9}, {"shop/fresh": "uid-fresh"}))
    kube.add_event(event_body("live", "uid-live"))
    kube.add_event(event_body("going", "uid-going", deleting=True))
    kube.add_event(event_body("recreated", "uid-new"))
    kube.add_event(event_body("fresh", "uid-fresh"))  # alive; the watch has not shown it yet
    directory = directory_of(("shop/live", "uid-live", False))

    released = collect(runtime, directory, kube.snapshot(), REMEMBER)

    assert sorted(outcome.deployment.name for outcome in released) == ["b-gone", "c-deleting", "d-recreated"]
    for name in ("b-gone", "c-deleting", "d-recreated"):
        assert kube.replicas(name) == 2
        assert kube.campaign_annotations(name) == {}
    for name, replicas in (("a-live", 5), ("e-unknown-but-alive", 9)):
        assert kube.replicas(name) == replicas
        assert kube.writes_to(name) == []
    # The API server was asked about the suspects only, never about an event the watch shows alive.
    assert sorted(kube.event_reads) == [
        (NAMESPACE, "fresh"),
        (NAMESPACE, "going"),
        (NAMESPACE, "gone"),
        (NAMESPACE, "recreated"),
    ]
    # Each release read the target afresh and was guarded.
    releases = [call for call in kube.claim_calls if call.outcome is not None]
    assert all(call.fresh and call.guarded and call.wanted is None for call in releases)


def test_collect_posts_a_warning_on_each_released_target(kube, runtime):
    kube.add_deployment(claimed("b-gone", {"shop/gone": 6}, {"shop/gone": "uid-gone"}))
    kube.add_deployment(claimed("d-recreated", {"shop/recreated": 8}, {"shop/recreated": "uid-old"}))
    kube.add_event(event_body("recreated", "uid-new"))

    collect(runtime, EventDirectory(), kube.snapshot(), REMEMBER)

    assert [(event.event_type, event.reason) for event in kube.posted] == [
        ("Warning", "OrphanClaimReleased"),
        ("Warning", "OrphanClaimReleased"),
    ]
    gone, recreated = kube.posted
    assert gone.involved == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "b-gone",
        "uid": "uid-deploy-b-gone",
    }
    assert gone.namespace == NAMESPACE
    assert gone.now == NOW
    assert gone.message == (
        "Released the orphan claim of CampaignEvent shop/gone on Deployment shop/b-gone "
        "(it no longer exists): 6 -> 2"
    )
    assert "shop/recreated" in recreated.message
    assert "it was re-created (uid uid-new, the claim was made by uid-old)" in recreated.message
    # Each Warning comes after its release.
    assert gone.seq > kube.writes_to("b-gone")[-1].seq


def test_collect_leaves_the_other_claims_on_a_shared_target(kube, runtime):
    kube.add_deployment(
        claimed("api", {"shop/live": 5, "shop/gone": 8}, {"shop/live": "uid-live", "shop/gone": "uid-gone"})
    )
    kube.add_event(event_body("live", "uid-live"))

    collect(runtime, directory_of(("shop/live", "uid-live", False)), kube.snapshot(), REMEMBER)

    view = kube.view("api")
    assert dict(view.claims) == {"shop/live": 5}
    assert dict(view.owners) == {"shop/live": "uid-live"}
    assert view.replicas == 5


def test_collect_releases_a_legacy_claim_of_an_event_that_is_gone(kube, runtime):
    kube.add_deployment(claimed("api", {"shop/legacy": 6}))
    released = collect(runtime, EventDirectory(), kube.snapshot(), REMEMBER)
    assert [outcome.deployment.name for outcome in released] == ["api"]
    assert kube.replicas("api") == 2


def test_collect_keeps_a_claim_that_changed_since_it_was_judged(kube, runtime):
    # The snapshot shows the claim of the deleted event; meanwhile the re-created event claimed the target
    # under its new uid. The claim read afresh is not the one judged: it is left alone.
    kube.add_deployment(claimed("api", {"shop/sale": 6}, {"shop/sale": "uid-old"}))
    stale = kube.snapshot()
    kube.set_annotation("api", OWNERS_ANNOTATION, dump_claims({"shop/sale": "uid-new"}))
    kube.add_event(event_body("sale", "uid-new"))

    released = collect(runtime, EventDirectory(), stale, REMEMBER)

    assert released == []
    assert kube.writes == []
    assert kube.posted == []
    assert dict(kube.view("api").claims) == {"shop/sale": 6}
    assert [call.outcome for call in kube.claim_calls] == [None]


def test_collect_keeps_a_claim_already_released_meanwhile(kube, runtime):
    kube.add_deployment(claimed("api", {"shop/sale": 6}, {"shop/sale": "uid-old"}))
    stale = kube.snapshot()
    for key in (BASELINE_ANNOTATION, CLAIMS_ANNOTATION, OWNERS_ANNOTATION):
        kube.set_annotation("api", key, None)
    kube.scale("api", 2)

    assert collect(runtime, EventDirectory(), stale, REMEMBER) == []
    assert kube.writes == []
    assert kube.posted == []


def test_collect_patches_nothing_under_the_operators_dry_run(kube):
    # `--dry-run`: "plan and report in status and Events; patch nothing".
    kube.add_deployment(claimed("api", {"shop/gone": 6}, {"shop/gone": "uid-gone"}))
    runtime = Runtime(config=OperatorConfig(dry_run=True), kube=kube, clock=Clock(NOW))
    collect(runtime, EventDirectory(), kube.snapshot(), REMEMBER)
    assert kube.writes == []
    assert kube.replicas("api") == 6


def test_collect_skips_a_target_gone_meanwhile(kube, runtime):
    kube.add_deployment(claimed("api", {"shop/sale": 6}, {"shop/sale": "uid-old"}))
    stale = kube.snapshot()
    kube.remove_deployment("api")
    assert collect(runtime, EventDirectory(), stale, REMEMBER) == []
    assert kube.posted == []


def test_an_event_confirmed_alive_is_asked_about_once_per_round_and_then_remembered(kube, runtime):
    # Three Deployments claimed by one live event the watch has not reported (start-up, or a standby).
    for name in ("a", "b", "c"):
        kube.add_deployment(claimed(name, {"shop/live": 5}, {"shop/live": "uid-live"}))
    kube.add_event(event_body("live", "uid-live"))
    directory = EventDirectory()

    assert collect(runtime, directory, kube.snapshot(), REMEMBER) == []
    assert kube.event_reads == [("shop", "live")]  # one question for three claims

    runtime.clock.advance(seconds=REMEMBER.total_seconds() - 1)
    collect(runtime, directory, kube.snapshot(), REMEMBER)
    assert len(kube.event_reads) == 1  # still remembered

    runtime.clock.advance(seconds=2)
    collect(runtime, directory, kube.snapshot(), REMEMBER)
    assert len(kube.event_reads) == 2  # asked again once the confirmation ran out
    assert all(kube.view(name).claims == {"shop/live": 5} for name in ("a", "b", "c"))


def test_a_confirmation_does_not_cover_another_uid_nor_outlive_the_deletion():
    directory = EventDirectory()
    directory.confirm("shop/sale", "uid-1", NOW + REMEMBER)
    assert directory.alive("shop/sale", "uid-1", NOW)
    assert not directory.alive("shop/sale", "uid-2", NOW)
    assert not directory.alive("shop/sale", "uid-1", NOW + REMEMBER)
    directory.confirm("shop/sale", "uid-1", NOW + REMEMBER)
    directory.gone("shop/sale", "uid-1")
    assert not directory.alive("shop/sale", "uid-1", NOW)


def test_campaign_annotations_left_without_any_claim_are_removed_and_the_baseline_restored(kube, runtime):
    leftover = {BASELINE_ANNOTATION: dump_baseline(Baseline(3))}
    kube.add_deployment(deployment_body("half-released", 7, annotations=leftover))
    kube.add_deployment(claimed("held", {"shop/live": 5}, {"shop/live": "uid-live"}))
    kube.add_event(event_body("live", "uid-live"))

    released = collect(runtime, EventDirectory(), kube.snapshot(), REMEMBER)

    assert [outcome.deployment.name for outcome in released] == ["half-released"]
    view = kube.view("half-released")
    assert view.replicas == 3 and view.baseline is None and not view.claims
    assert kube.view("held").claims == {"shop/live": 5}
    assert "orphan campaign annotations on Deployment shop/half-released" in kube.posted[0].message


# --- the finalizer's head start -----------------------------------------------------------------------------
def deleting_since(name: str, uid: str, began: datetime) -> dict:
    body = event_body(name, uid, deleting=True)
    body["metadata"]["deletionTimestamp"] = began.strftime("%Y-%m-%dT%H:%M:%SZ")
    return body


@pytest.mark.parametrize(
    ("began", "owner", "turn"),
    [
        (NOW - timedelta(seconds=3), "uid-1", True),
        (NOW - timedelta(seconds=3), None, True),
        (NOW - timedelta(seconds=3), "uid-old", False),  # another event of that name made the claim
        (NOW - timedelta(seconds=8), "uid-1", False),  # the finalizer had its chance
    ],
    ids=["young", "young-legacy", "another-uid", "old"],
)
def test_a_young_deletion_is_its_finalizers_turn(began, owner, turn):
    event = deleting_since("sale", "uid-1", began)
    assert finalizers_turn(event, owner, NOW, timedelta(seconds=7.5)) is turn
    assert not finalizers_turn(event_body("sale", "uid-1"), owner, NOW, timedelta(seconds=7.5))
    assert not finalizers_turn(None, owner, NOW, timedelta(seconds=7.5))


def test_collect_leaves_a_young_deletion_to_the_finalizer_then_releases_what_it_left(kube, runtime):
    kube.add_deployment(claimed("api", {"shop/going": 7}, {"shop/going": "uid-going"}))
    kube.add_event(deleting_since("going", "uid-going", NOW - timedelta(seconds=2)))

    assert collect(runtime, EventDirectory(), kube.snapshot(), REMEMBER) == []
    assert kube.writes_to("api") == []
    assert kube.posted == []

    runtime.clock.advance(seconds=runtime.config.resync_interval)
    released = collect(runtime, EventDirectory(), kube.snapshot(), REMEMBER)
    assert [outcome.deployment.name for outcome in released] == ["api"]
    assert kube.replicas("api") == 2
