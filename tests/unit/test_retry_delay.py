"""A failed pass is retried with a jittered exponential backoff that never postpones a due transition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaign_autoscaler.handlers.runtime import (
    RETRY_JITTER,
    RETRY_MAX_SECONDS,
    TRANSITION_GRACE_SECONDS,
    EventMemory,
)

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
