"""Node headroom without a cluster: the spec field, when placeholders are wanted and how many, which pods to
create and delete, and what a placeholder pod and a pod template request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from campaign_autoscaler.adapters.placeholders import (
    PlaceholderAdapter,
    format_quantity,
    placeholder_view,
    pod_requests,
    pod_template_facts,
)
from campaign_autoscaler.planning import SpecError, parse_spec, resolve_window
from campaign_autoscaler.planning.headroom import (
    ExistingPlaceholder,
    HeadroomTarget,
    NewPlaceholder,
    headroom_start,
    next_change,
    placeholder_changes,
    placeholder_name,
    plan_headroom,
)

START = datetime(2026, 9, 9, 0, 0, tzinfo=UTC)
CPU = {"cpu": Decimal("0.5"), "memory": Decimal(256 * 2**20)}


def spec_of(**fields: Any):
    raw = {
        "start": "2026-09-09T00:00:00Z",
        "end": "2026-09-09T10:00:00Z",
        "leadTime": "30m",
        "rampUp": {"steps": 3},
        "targets": [{"name": "checkout"}, {"name": "search"}],
        "nodeHeadroom": {"leadTime": "10m"},
    }
    raw.update(fields)
    return parse_spec({key: value for key, value in raw.items() if value is not None})


# --- the spec ---------------------------------------------------------------------------------------------
def test_node_headroom_is_optional_and_parsed_once() -> None:
    assert spec_of(nodeHeadroom=None).node_headroom is None
    headroom = spec_of().node_headroom
    assert headroom is not None and headroom.lead_time == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({}, "spec.nodeHeadroom.leadTime", "required"),
        ({"leadTime": "ten minutes"}, "spec.nodeHeadroom.leadTime", "duration"),
        ({"leadTime": "0s"}, "spec.nodeHeadroom.leadTime", "must be > 0"),
        ({"leadTime": "10m", "size": 3}, "spec.nodeHeadroom.size", "unknown field"),
        ("10m", "spec.nodeHeadroom", "must be an object"),
    ],
)
def test_a_bad_node_headroom_names_its_field(value: object, field: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec_of(nodeHeadroom=value)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_recurring_windows_must_leave_room_for_the_headroom_too() -> None:
    recurring = {"schedule": {"cron": "0 0 * * *", "duration": "23h"}, "start": None, "end": None}
    without = {"schedule": recurring["schedule"], "leadTime": "30m", "rampDown": {"duration": "20m"}}
    parse_spec({**without, "targets": [{"name": "a"}]})  # 30m + 23h + 20m fits in a day
    with pytest.raises(SpecError, match=r"nodeHeadroom.leadTime \+ leadTime \+ duration"):
        spec_of(**recurring, rampDown={"duration": "20m"}, nodeHeadroom={"leadTime": "15m"})


# --- when and how many --------------------------------------------------------------------------------------
def targets(replicas: int = 4, ready: int = 4, requests: dict[str, Decimal] | None = None):
    return [
        HeadroomTarget("checkout", floor=10, replicas=replicas, ready_replicas=ready, requests=CPU),
        HeadroomTarget("search", floor=6, replicas=3, ready_replicas=3, requests=requests or {}),
    ]


def test_placeholders_from_headroom_start_until_the_window_opens() -> None:
    spec = spec_of()
    window = resolve_window(spec, START)
    begin = START - timedelta(minutes=40)
    assert headroom_start(spec, window) == begin
    assert not plan_headroom(spec, window, begin - timedelta(seconds=1), targets()).active
    plan = plan_headroom(spec, window, begin, targets())
    assert plan.active
    assert [(s.deployment, s.count) for s in plan.sets] == [("checkout", 6)]  # floor 10 - 4 replicas
    assert plan.without_requests == ("search",)  # nothing to hold for it: skipped, and said so
    assert plan.total() == {"cpu": Decimal("3.0"), "memory": Decimal(6 * 256 * 2**20)}
    # At the opening the ramp-up has raised the replicas to the floor: nothing left to hold.
    assert plan_headroom(spec, window, START, targets(replicas=10)).sets[0].count == 0
    # Raised above what is there (the floor edited mid-window), room is held again until the window ends.
    assert plan_headroom(spec, window, START + timedelta(hours=1), targets(replicas=8)).sets[0].count == 2
    assert not plan_headroom(spec, window, window.end, targets()).active
    assert not plan_headroom(spec_of(nodeHeadroom=None), window, begin, targets()).active


def test_the_ramp_and_readiness_lower_what_is_held() -> None:
    spec = spec_of()
    window = resolve_window(spec, START)
    during_ramp = START - timedelta(minutes=20)
    # The first two steps raised the replicas to 8: room is held for the last 2 only, so a placeholder the
    # scheduler preempted for a real pod is not made again; but 4 are kept, the 2 pods not Ready yet being
    # the scheduler's to place (by preempting two of them).
    held = plan_headroom(spec, window, during_ramp, targets(replicas=8, ready=6)).sets[0]
    assert (held.count, held.keep) == (2, 4)
    held = plan_headroom(spec, window, during_ramp, targets(replicas=10, ready=7)).sets[0]
    assert (held.count, held.keep) == (0, 3)
    # Ready at the floor: nothing is held, whatever the replicas say.
    held = plan_headroom(spec, window, during_ramp, targets(replicas=4, ready=10)).sets[0]
    assert (held.count, held.keep) == (0, 0)


def test_the_operator_wakes_up_for_the_headroom() -> None:
    spec = spec_of()
    window = resolve_window(spec, START)
    begin = START - timedelta(minutes=40)
    assert next_change(spec, window, begin - timedelta(hours=1)) == begin
    assert next_change(spec, window, begin) == START - timedelta(minutes=30)  # the first ramp-up step
    assert next_change(spec_of(nodeHeadroom=None), window, begin) == START - timedelta(minutes=30)


# --- what to create and delete ------------------------------------------------------------------------------
def test_names_are_fixed_valid_and_short() -> None:
    name = placeholder_name("a-very-long-event-name.with.dots", "uid-1", "checkout.v2-" + "x" * 200, 12)
    assert name == placeholder_name(
        "a-very-long-event-name.with.dots", "uid-1", "checkout.v2-" + "x" * 200, 12
    )
    assert len(name) <= 63 and name.endswith("-12")
    assert all(part and part[0].isalnum() and part[-1].isalnum() for part in name.split("-"))
    assert placeholder_name("sale", "uid-2", "checkout", 0) != placeholder_name(
        "sale", "uid-1", "checkout", 0
    )


def existing(index: int, requests: dict[str, Decimal] = CPU, **extra: Any) -> ExistingPlaceholder:
    return ExistingPlaceholder(f"p{index}", "checkout", index, requests, **extra)


def changes_for(count: int, pods: list[ExistingPlaceholder], ready: int | None = None):
    """The changes for `count` placeholders wanted (`ready` replicas of the floor 10 Ready: all there are,
    unless given)."""
    spec = spec_of()
    window = resolve_window(spec, START)
    replicas = 10 - count
    plan = plan_headroom(
        spec, window, START - timedelta(minutes=35), targets(replicas, replicas if ready is None else ready)
    )
    return placeholder_changes("sale", "uid-1", plan, pods)


def test_missing_placeholders_are_created_at_the_lowest_free_indexes() -> None:
    changes = changes_for(3, [existing(1)])
    assert [(p.index, p.deployment) for p in changes.create] == [(0, "checkout"), (2, "checkout")]
    assert changes.create[0] == NewPlaceholder(
        placeholder_name("sale", "uid-1", "checkout", 0), "checkout", 0, CPU
    )
    assert changes.delete == ()


def test_too_many_lose_their_highest_indexes_and_stale_requests_are_replaced() -> None:
    changes = changes_for(2, [existing(0), existing(1), existing(2), existing(3)])
    assert [p.index for p in changes.delete] == [2, 3] and changes.create == ()
    stale = existing(0, {"cpu": Decimal(1)})
    changes = changes_for(2, [stale, existing(1)])
    assert changes.delete == (stale,)
    assert [p.index for p in changes.create] == [2]  # name 0 is still taken until it is gone


def test_the_surplus_is_left_to_the_scheduler_until_the_new_pods_are_ready() -> None:
    pods = [existing(index) for index in range(4)]
    # The ramp just raised 6 -> 8 replicas: the two new pods preempt two placeholders, none is deleted.
    assert changes_for(2, pods, ready=6).empty
    # Both Ready, one in the room of the placeholder it preempted, the other on room found elsewhere: the one
    # placeholder too many goes.
    changes = changes_for(2, pods[:3], ready=8)
    assert [p.index for p in changes.delete] == [2] and changes.create == ()
    # Preempted beyond what is wanted: made again up to what the ramp still needs.
    changes = changes_for(2, pods[:1], ready=6)
    assert [p.index for p in changes.create] == [1] and changes.delete == ()


def test_a_terminating_placeholder_counts_as_gone_and_keeps_its_name() -> None:
    changes = changes_for(2, [existing(0, terminating=True), existing(1)])
    assert changes.delete == () and [p.index for p in changes.create] == [2]


def test_outside_the_headroom_every_placeholder_goes() -> None:
    spec = spec_of()
    window = resolve_window(spec, START)
    plan = plan_headroom(spec, window, window.end, targets())
    pods = [existing(0), existing(1), ExistingPlaceholder("gone", "old-target", 0, CPU)]
    changes = placeholder_changes("sale", "uid-1", plan, pods)
    assert {p.name for p in changes.delete} == {"p0", "p1", "gone"} and changes.create == ()


# --- pods ---------------------------------------------------------------------------------------------------
def test_a_pod_requests_what_the_scheduler_counts() -> None:
    spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}},
            {"resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}}},  # a limit alone is the request
            {},
        ],
        "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
        "overhead": {"memory": "10Mi"},
    }
    assert pod_requests(spec) == {
        "cpu": Decimal(2),
        "memory": Decimal(138 * 2**20),
        "nvidia.com/gpu": Decimal(1),
    }
    assert pod_requests({"containers": [{"name": "app"}]}) == {}


def test_quantities_are_written_rounded_up() -> None:
    assert format_quantity("cpu", Decimal("0.2501")) == "251m"
    assert format_quantity("memory", Decimal("1000.5")) == "1001"
    assert format_quantity("nvidia.com/gpu", Decimal(1)) == "1"


def test_a_placeholder_pod_is_found_again_and_owned_by_its_event() -> None:
    template = pod_template_facts(
        {
            "spec": {
                "containers": [{"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}],
                "nodeSelector": {"pool": "sale"},
                "tolerations": [{"key": "sale", "operator": "Exists"}],
                "affinity": {"podAntiAffinity": {"x": 1}, "nodeAffinity": {"y": 2}},
            }
        }
    )
    adapter = PlaceholderAdapter(lambda *a, **k: {}, image="pause:1", priority_class="low")
    new = NewPlaceholder("sale-checkout-1234abcd-0", "checkout", 0, {"cpu": Decimal("0.5")})
    body = adapter.body("shop", "sale", "uid-1", new, template)
    spec = body["spec"]
    assert spec["priorityClassName"] == "low"
    assert spec["containers"][0]["image"] == "pause:1"
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "500m"}, "limits": {"cpu": "1000m"}}
    assert spec["nodeSelector"] == {"pool": "sale"} and spec["tolerations"] == [
        {"key": "sale", "operator": "Exists"}
    ]
    assert spec["affinity"] == {"nodeAffinity": {"y": 2}}  # placed as the target's pods, not beside them
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    view = placeholder_view(body)
    assert (view.event_uid, view.event_key, view.deployment, view.index) == (
        "uid-1",
        "shop/sale",
        "checkout",
        0,
    )
    assert view.requests == {"cpu": Decimal("0.5")} and not view.terminating
