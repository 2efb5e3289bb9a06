"""The Event lane: Events handed over without waiting, posted in order by a thread of their own."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime

from campaign_autoscaler.adapters.eventlane import EventLane

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
    ) -> None:
        assert self.go_on.wait(10)
        if reason == "Broken":
            raise OSError("connection reset")
        self.posted.append(f"{namespace}/{involved['name']} {event_type} {reason}: {message}")


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
