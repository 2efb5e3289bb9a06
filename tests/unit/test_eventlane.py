"""The Event lane: Events handed over without waiting, posted in order by a thread of their own."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from campaign_autoscaler.adapters.eventlane import EventCorrelator, EventLane, Posted, event_key, message_key
from campaign_autoscaler.report.collect import transition_record

from .fakes import FakeKube

NOW = datetime(2026, 9, 9, tzinfo=UTC)
INVOLVED = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": "u1"}


class SlowPoster:
    """Posts only when the test lets it; fails on a reason named Broken."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.posted: list[str] = []

    def post_event(
        self,
        *,
        namespace: str,
        involved: Mapping[str, str],
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> str | None:
        assert self.go_on.wait(10)
        if reason == "Broken":
            raise OSError("connection reset")
        self.posted.append(f"{namespace}/{involved['name']} {event_type} {reason}: {message}")
        return None  # nothing to count repeats on

    def patch_event(self, namespace: str, name: str, *, count: int, message: str, now: datetime) -> bool:
        raise AssertionError("no Event was named, so none is patched")


def post(lane: EventLane, reason: str, message: str) -> None:
    lane.post_event(
        namespace="shop", involved=INVOLVED, event_type="Normal", reason=reason, message=message, now=NOW
    )


def test_events_are_handed_over_at_once_and_posted_in_order_a_failure_included() -> None:
    poster = SlowPoster()
    lane = EventLane(poster).start()
    for reason, message in (("Scaled", "4 -> 10"), ("Broken", "x"), ("Restored", "10 -> 4")):
        post(lane, reason, message)  # returns while the poster is still held
    assert poster.posted == []
    poster.go_on.set()
    lane.wait_empty()
    assert poster.posted == ["shop/checkout Normal Scaled: 4 -> 10", "shop/checkout Normal Restored: 10 -> 4"]


def test_a_full_lane_drops_rather_than_waits() -> None:
    poster = SlowPoster()
    lane = EventLane(poster, capacity=2)  # not started: nothing is taken off the queue
    for n in range(4):
        post(lane, "Scaled", str(n))
    assert lane.dropped == 2


def post_at(lane: EventLane, reason: str, message: str, now: datetime, **involved: str) -> None:
    lane.post_event(
        namespace="shop",
        involved={**INVOLVED, **involved},
        event_type="Normal",
        reason=reason,
        message=message,
        now=now,
    )


def test_repeats_within_the_interval_become_one_event_with_a_count() -> None:
    kube = FakeKube()
    lane = EventLane(kube).start()
    for n in range(5):
        post_at(lane, "Scaled", f"Scaled Deployment shop/checkout {n} -> {n + 1}", NOW + timedelta(seconds=n))
    lane.wait_empty()
    assert [e.reason for e in kube.posted] == ["Scaled"]
    name = kube.posted[0].name
    # The repeats are written together: one PATCH with the count and the latest message.
    assert [(p.name, p.count) for p in kube.event_patches] == [(name, 5)]
    last = kube.event_patches[-1]
    assert last.message == "Scaled Deployment shop/checkout 4 -> 5"  # the latest message shows
    assert last.now == NOW + timedelta(seconds=4)


def test_another_object_reason_type_or_kind_of_message_is_another_event() -> None:
    kube = FakeKube()
    lane = EventLane(kube).start()
    post_at(lane, "Scaled", "Scaled Deployment shop/checkout 1 -> 2", NOW)
    post_at(lane, "Scaled", "Scaled Deployment shop/cart 1 -> 2", NOW, name="cart", uid="u2")
    post_at(lane, "Restored", "Restored Deployment shop/checkout 2 -> 1", NOW)
    post_at(lane, "Scaled", "Would scale Deployment shop/checkout 1 -> 2 (dry run)", NOW)
    lane.post_event(
        namespace="shop", involved=INVOLVED, event_type="Warning", reason="Scaled", message="1 -> 2", now=NOW
    )
    lane.wait_empty()
    assert len(kube.posted) == 5
    assert kube.event_patches == []


def test_names_that_differ_in_their_digits_are_not_merged() -> None:
    assert message_key("Metric of Deployment shop/web-1 is unavailable") != message_key(
        "Metric of Deployment shop/web-2 is unavailable"
    )
    assert message_key("Scaled Deployment shop/web-1 4 -> 6 (short by 3)") == message_key(
        "Scaled Deployment shop/web-1 10 -> 12.5 (short by 7)"
    )


def test_after_the_interval_a_new_event_is_posted() -> None:
    kube = FakeKube()
    lane = EventLane(kube, correlator=EventCorrelator(interval=timedelta(minutes=10))).start()
    post_at(lane, "Scaled", "1 -> 2", NOW)
    post_at(lane, "Scaled", "2 -> 3", NOW + timedelta(minutes=9))
    post_at(lane, "Scaled", "3 -> 4", NOW + timedelta(minutes=19, seconds=1))  # 10 min 1 s after the last
    lane.wait_empty()
    assert len(kube.posted) == 2
    assert [p.count for p in kube.event_patches] == [2]


def test_repeats_apart_are_each_written() -> None:
    kube = FakeKube()
    lane = EventLane(kube, repeat_delay=0).start()  # every repeat written as soon as it comes
    for n in range(3):
        post_at(lane, "Scaled", f"{n} -> {n + 1}", NOW + timedelta(seconds=n))
    lane.wait_empty()
    assert len(kube.posted) == 1
    assert [(p.count, p.message) for p in kube.event_patches] == [(2, "1 -> 2"), (3, "2 -> 3")]


def test_an_expired_event_is_posted_again_and_counted_from_one() -> None:
    kube = FakeKube()
    lane = EventLane(kube, repeat_delay=0).start()
    post_at(lane, "Scaled", "1 -> 2", NOW)
    lane.wait_empty()
    kube.expired_events.add(("shop", kube.posted[0].name))
    post_at(lane, "Scaled", "2 -> 3", NOW + timedelta(seconds=1))
    post_at(lane, "Scaled", "3 -> 4", NOW + timedelta(seconds=2))
    lane.wait_empty()
    assert [e.message for e in kube.posted] == ["1 -> 2", "2 -> 3"]
    assert [(p.name, p.count) for p in kube.event_patches] == [(kube.posted[1].name, 2)]


def test_the_correlator_keeps_only_the_most_recent_keys() -> None:
    correlator = EventCorrelator(capacity=3)
    keys = [event_key("shop", {**INVOLVED, "name": f"d{n}"}, "Normal", "Scaled", "x") for n in range(5)]
    for n, key in enumerate(keys):
        correlator.remember(key, Posted(f"e{n}", 1, NOW))
    correlator.repeats(keys[2], NOW)  # used lately: kept
    correlator.remember(event_key("shop", INVOLVED, "Normal", "Scaled", "y"), Posted("e5", 1, NOW))
    assert len(correlator) == 3
    assert correlator.repeats(keys[0], NOW) is None and correlator.repeats(keys[3], NOW) is None
    assert correlator.repeats(keys[2], NOW) == Posted("e2", 1, NOW)
    assert correlator.repeats(keys[4], NOW) == Posted("e4", 1, NOW)


def test_events_kept_apart_are_each_posted() -> None:
    """A scale Event on a CampaignEvent is the report's stamp of a transition: each is posted."""
    kube = FakeKube()
    lane = EventLane(kube, kept_apart=transition_record).start()
    for n in range(3):
        post_at(
            lane, "Scaled", f"{n} -> {n + 1}", NOW + timedelta(seconds=n), kind="CampaignEvent", name="sale"
        )
        post_at(lane, "Scaled", f"{n} -> {n + 1}", NOW + timedelta(seconds=n))  # on the Deployment
    lane.wait_empty()
    assert [(e.involved["kind"], e.message) for e in kube.posted] == [
        ("CampaignEvent", "0 -> 1"),
        ("Deployment", "0 -> 1"),
        ("CampaignEvent", "1 -> 2"),
        ("CampaignEvent", "2 -> 3"),
    ]
    assert [p.count for p in kube.event_patches] == [3]
