"""The event daemon's answers to a failed pass: a jittered exponential backoff that never postpones a due
transition, and an event found gone (which Kopf does not always stop the daemon of) let go."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.handlers.daemon import gone_after, let_go
from campaign_autoscaler.handlers.runtime import (
    RETRY_JITTER,
    RETRY_MAX_SECONDS,
    TRANSITION_GRACE_SECONDS,
    EventMemory,
    OperatorConfig,
    Runtime,
)
from tests.unit.fakes import NAMESPACE, Clock, EventDriver, FakeKube, event_body

NOW = datetime(2026, 12, 12, 0, 0, tzinfo=UTC)


def test_backoff_doubles_up_to_its_ceiling_within_the_jitter():
    memory = EventMemory()
    for failure in range(1, 9):
        delay = memory.retry_delay(NOW, resync_interval=600.0)
        nominal = min(RETRY_MAX_SECONDS, 2.0 ** (failure - 1))
        assert nominal * (1 - RETRY_JITTER) <= delay <= nominal * (1 + RETRY_JITTER)
    assert memory.failures == 8


def test_retry_comes_no_later_than_the_resync():
    memory = EventMemory(failures=6)
    assert memory.retry_delay(NOW, resync_interval=2.0) == 2.0


def test_retry_comes_no_later_than_the_next_transition():
    memory = EventMemory(failures=6, next_at=NOW + timedelta(seconds=3))
    assert memory.retry_delay(NOW, resync_interval=600.0) == 3.0 + TRANSITION_GRACE_SECONDS


def test_a_transition_already_past_does_not_make_retries_spin():
    memory = EventMemory(failures=4, next_at=NOW - timedelta(seconds=1))
    delay = memory.retry_delay(NOW, resync_interval=600.0)
    assert 16 * (1 - RETRY_JITTER) <= delay <= 16 * (1 + RETRY_JITTER)


class UnreachableKube(FakeKube):
    def get_event(self, namespace: str, name: str) -> dict | None:
        raise ApiException(status=503, reason="Service Unavailable")


@pytest.mark.parametrize(
    ("failure", "present", "gone"),
    [
        (404, None, True),  # no event of that name any more
        (422, "uid-new", True),  # the uid test failed: another event re-created under the name
        (404, "uid-1", False),  # the 404 was about something else: the event is there
        (500, None, False),  # not an answer about the event
        (409, None, False),
    ],
    ids=["deleted", "recreated", "another-404", "server-error", "conflict"],
)
def test_a_failure_says_the_event_is_gone_only_as_the_api_server_confirms(failure, present, gone):
    kube = FakeKube()
    if present is not None:
        kube.add_event(event_body("sale", present))
    runtime = Runtime(config=OperatorConfig(), kube=kube, clock=Clock(NOW))
    err = ApiException(status=failure, reason="test")
    assert asyncio.run(gone_after(runtime, err, NAMESPACE, "sale", "uid-1")) is gone
    assert kube.event_reads == ([(NAMESPACE, "sale")] if failure in (404, 422) else [])


def test_a_failure_says_nothing_when_the_api_server_cannot_confirm():
    runtime = Runtime(config=OperatorConfig(), kube=UnreachableKube(), clock=Clock(NOW))
    assert asyncio.run(gone_after(runtime, ApiException(status=404), NAMESPACE, "sale", "uid-1")) is False
    assert asyncio.run(gone_after(runtime, OSError("reset"), NAMESPACE, "sale", "uid-1")) is False


def test_letting_go_while_the_operator_stops_leaves_the_claims_to_the_next_replica():
    """A release refused by the closing write gate neither raises out of the watch handler nor writes."""
    kube = FakeKube()
    runtime = Runtime(config=OperatorConfig(), kube=kube, clock=Clock(NOW))
    assert runtime.gate.close(timeout=1.0)
    driver = EventDriver(runtime, kube, {})
    asyncio.run(let_go(runtime, driver.memory, driver.world(), "it no longer exists"))
    assert kube.writes == [] and kube.claim_calls == []
    assert not driver.memory.fence.released
