"""Transitions first: the bookkeeping lanes (status writes, Events) wait their turn behind urgent passes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from campaign_autoscaler.adapters.eventlane import EventLane
from campaign_autoscaler.adapters.priority import TransitionsFirst
from campaign_autoscaler.adapters.statuslane import StatusLane
from campaign_autoscaler.handlers.lanes import PassLanes

from .fakes import FakeKube

NOW = datetime(2026, 9, 9, tzinfo=UTC)


def waiter(priority: TransitionsFirst) -> tuple[threading.Thread, threading.Event]:
    """A thread that waits its turn; the event is set once it has it."""
    turned = threading.Event()

    def wait() -> None:
        priority.wait_turn()
        turned.set()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread, turned


def test_bookkeeping_goes_at_once_while_no_urgent_pass_is_in_hand() -> None:
    priority = TransitionsFirst()
    _, turned = waiter(priority)
    assert turned.wait(5) and priority.waits == 0


def test_bookkeeping_waits_until_the_last_urgent_pass_ends() -> None:
    priority = TransitionsFirst(patience=60)
    first, second = priority.busy(), priority.busy()
    first.__enter__()
    second.__enter__()
    _, turned = waiter(priority)
    first.__exit__(None, None, None)
    assert not turned.wait(0.3)  # one urgent pass is still in hand
    second.__exit__(None, None, None)
    assert turned.wait(5) and priority.waits == 1


def test_bookkeeping_waits_out_one_busy_spell_not_the_next_one_too() -> None:
    """The spell a request waited behind ends, and the next begins before the waiting thread runs again (as
    under a steady stream of urgent passes): it goes, instead of waiting behind spell after spell."""
    priority = TransitionsFirst(patience=60)
    first = priority.busy()
    first.__enter__()
    _, turned = waiter(priority)
    assert not turned.wait(0.3)
    second = priority.busy()
    with priority._changed:  # the end of one spell and the start of the next, before the waiter looks
        first.__exit__(None, None, None)
        second.__enter__()
    assert turned.wait(5) and priority.waits == 1
    _, next_one = waiter(priority)  # a request that comes during the new spell waits it out in turn
    assert not next_one.wait(0.3)
    second.__exit__(None, None, None)
    assert next_one.wait(5)


def test_bookkeeping_is_never_starved_it_goes_once_a_busy_spell_outlasts_the_patience() -> None:
    priority = TransitionsFirst(patience=0.3)
    with priority.busy():
        began = time.monotonic()
        _, turned = waiter(priority)
        assert turned.wait(5)
        assert 0.25 <= time.monotonic() - began < 3
        _, later = waiter(priority)  # the same spell: its patience is spent, nothing waits any more
        assert later.wait(0.2)


def test_only_urgent_passes_make_the_lane_busy() -> None:
    lanes = PassLanes(urgent_workers=1, routine_workers=1, priority=TransitionsFirst(patience=60))
    seen: list[bool] = []

    def turn_would_wait() -> bool:
        _, turned = waiter(lanes.priority)
        return not turned.wait(0.2)

    async def both() -> None:
        seen.append(await lanes.run(False, turn_would_wait))
        seen.append(await lanes.run(True, turn_would_wait))

    try:
        asyncio.run(both())
    finally:
        lanes.shutdown()
    assert seen == [False, True]


def test_a_status_write_waits_its_turn_and_only_the_latest_status_is_written() -> None:
    priority = TransitionsFirst(patience=60)
    written: list[dict[str, Any]] = []

    def writer(namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> None:
        written.append(dict(status))

    lane = StatusLane(writer, workers=1, priority=priority).start()
    with priority.busy():
        first = lane.submit("shop", "sale", "u1", {"phase": "PreScaling"})
        time.sleep(0.3)
        assert written == []
        second = lane.submit("shop", "sale", "u1", {"phase": "Active"})
    assert second.result(5) is None and first.done()
    assert written == [{"phase": "Active"}]


def test_an_event_waits_its_turn() -> None:
    priority = TransitionsFirst(patience=60)
    kube = FakeKube()
    lane = EventLane(kube, priority=priority).start()
    involved = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": "u1"}
    with priority.busy():
        lane.post_event(
            namespace="shop",
            involved=involved,
            event_type="Normal",
            reason="Scaled",
            message="1 -> 2",
            now=NOW,
        )
        time.sleep(0.3)
        assert kube.posted == []
    lane.wait_empty()
    assert [event.reason for event in kube.posted] == ["Scaled"]
