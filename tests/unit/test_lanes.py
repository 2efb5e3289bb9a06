"""Passes in two lanes: what makes a pass urgent, and an urgent pass never queued behind routine ones."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import kopf
import pytest

from campaign_autoscaler.handlers.collector import EventDirectory
from campaign_autoscaler.handlers.daemon import on_event_seen
from campaign_autoscaler.handlers.lanes import PassLanes
from campaign_autoscaler.handlers.runtime import EventMemory, OperatorConfig, Runtime
from tests.unit.fakes import FakeKube

NOW = datetime(2026, 12, 12, 0, 0, tzinfo=UTC)


def test_the_first_pass_is_urgent_then_only_what_is_due():
    memory = EventMemory(next_at=NOW + timedelta(seconds=5))
    assert memory.take_urgency(NOW) is True  # the first pass after a start may carry an overdue step
    assert memory.take_urgency(NOW) is False  # a resync before the step
    assert memory.take_urgency(NOW + timedelta(seconds=5)) is True  # the step is due


def test_a_drift_wake_is_urgent_once_and_a_readiness_wake_is_not():
    memory = EventMemory(next_at=None)
    memory.take_urgency(NOW)
    memory.wake(urgent=False)
    assert memory.wakeup.is_set()
    assert memory.take_urgency(NOW) is False
    memory.wake(urgent=True)
    memory.wake(urgent=False)  # a later plain wake-up does not take the urgency back
    assert memory.take_urgency(NOW) is True
    assert memory.take_urgency(NOW) is False


def test_a_retry_is_urgent():
    memory = EventMemory(failures=2, next_at=NOW + timedelta(hours=1))
    memory.take_urgency(NOW)
    assert memory.take_urgency(NOW) is True


def test_an_urgent_pass_runs_while_every_routine_thread_is_busy():
    lanes = PassLanes(urgent_workers=2, routine_workers=2)
    runtime = Runtime(config=OperatorConfig(), kube=FakeKube(), lanes=lanes)
    release = threading.Event()

    async def scenario() -> list[str]:
        done: list[str] = []

        def routine(name: str) -> str:
            release.wait(10)
            done.append(name)
            return name

        def urgent() -> str:
            done.append("urgent")
            return "urgent"

        backlog = [asyncio.ensure_future(runtime.in_lane(False, routine, f"r{i}")) for i in range(6)]
        assert await asyncio.wait_for(runtime.in_lane(True, urgent), timeout=5) == "urgent"
        release.set()
        assert sorted(await asyncio.gather(*backlog)) == [f"r{i}" for i in range(6)]
        return done

    try:
        assert asyncio.run(scenario())[0] == "urgent"
    finally:
        release.set()
        lanes.shutdown()


def test_without_lanes_a_pass_runs_in_the_default_executor():
    runtime = Runtime(config=OperatorConfig(), kube=FakeKube())
    assert asyncio.run(runtime.in_lane(True, threading.current_thread)) is not threading.main_thread()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("meta", "urgent"),
    [
        ({"generation": 2}, True),  # the spec changed: its first pass may carry a write due now
        ({"generation": 1, "deletionTimestamp": "2026-12-12T00:00:00Z"}, True),  # its claims go at once
        ({"generation": 1}, False),  # a status write of its own, seen back: no pass needed
    ],
)
async def test_a_spec_change_or_a_deletion_wakes_the_event_urgently(meta: dict, urgent: bool) -> None:
    memory = EventMemory(reconciled_generation=1, urgent=False)
    memo = kopf.Memo(event=memory, directory=EventDirectory())
    await on_event_seen(
        type="MODIFIED", name="sale", namespace="shop", uid="u1", meta=meta, spec={}, status={}, memo=memo
    )
    assert memory.wakeup.is_set() is urgent
    assert memory.take_urgency(NOW) is urgent
