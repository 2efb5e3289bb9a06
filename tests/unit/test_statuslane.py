"""The status lane: statuses handed over without waiting, the latest of each event written, failures told."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from campaign_autoscaler.adapters.statuslane import StatusLane
from campaign_autoscaler.handlers.daemon import StatusWrite, needs_status_write


class HeldWriter:
    """Writes only when the test lets it; answers 404 for an event named gone."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.started = threading.Event()
        self.written: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> None:
        self.started.set()
        assert self.go_on.wait(10)
        if name == "gone":
            raise ApiException(status=404, reason="Not Found")
        self.written.append((namespace, name, uid, dict(status)))


def test_a_status_waiting_is_replaced_by_the_latest_of_its_event() -> None:
    writer = HeldWriter()
    lane = StatusLane(writer, workers=1).start()
    first = lane.submit("shop", "a", "u-a", {"phase": "Pending"})
    assert writer.started.wait(10)  # the lane's one thread now holds the write of a
    second = lane.submit("shop", "b", "u-b", {"phase": "Pending"})
    third = lane.submit("shop", "b", "u-b", {"phase": "PreScaling"})
    assert third is second and lane.waiting() == 1 and lane.superseded == 1
    writer.go_on.set()
    assert first.result(10) is None and third.result(10) is None
    assert writer.written == [
        ("shop", "a", "u-a", {"phase": "Pending"}),
        ("shop", "b", "u-b", {"phase": "PreScaling"}),
    ]


class FirstWriteHeld(HeldWriter):
    """Holds the first write until the test lets it go; writes every later one at once."""

    def __call__(self, namespace: str, name: str, uid: str, status: Mapping[str, Any]) -> None:
        if self.started.is_set():
            self.written.append((namespace, name, uid, dict(status)))
            return
        super().__call__(namespace, name, uid, status)


def test_a_status_handed_over_while_its_event_is_being_written_lands_after_that_write() -> None:
    writer = FirstWriteHeld()
    lane = StatusLane(writer, workers=2).start()
    first = lane.submit("shop", "a", "u-a", {"phase": "PreScaling"})
    assert writer.started.wait(10)  # one thread holds the write of a; the other is idle
    newer = {"phase": "PreScaling", "targets": [{"forecastReplicas": 18}]}
    second = lane.submit("shop", "a", "u-a", newer)
    other = lane.submit("shop", "b", "u-b", {"phase": "Pending"})
    # The idle thread passes over the newer status of a (handed over before b's) and writes b, while a's
    # first write goes on: once b is written, a lane that took statuses in order would have written a's too.
    assert other.result(10) is None
    assert not second.done() and lane.waiting() == 1
    writer.go_on.set()
    assert first.result(10) is None and second.result(10) is None
    of_a = [status for _, name, _, status in writer.written if name == "a"]
    assert of_a == [{"phase": "PreScaling"}, newer]


def test_a_failed_write_is_told_through_its_future() -> None:
    writer = HeldWriter()
    writer.go_on.set()
    lane = StatusLane(writer).start()
    done = lane.submit("shop", "gone", "u-1", {"phase": "Active"})
    with pytest.raises(ApiException) as failed:
        done.result(10)
    assert failed.value.status == 404


def finished(error: Exception | None = None) -> Future[None]:
    done: Future[None] = Future()
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
    return done


def test_a_status_is_written_once_until_the_watch_shows_something_new() -> None:
    old, new = {"phase": "Pending"}, {"phase": "PreScaling"}
    assert not needs_status_write(old, old, None)  # the watch shows it already
    assert needs_status_write(new, old, None)
    waiting = StatusWrite(new, old, Future())
    assert not needs_status_write(new, old, waiting)  # handed over, not written yet
    landed = StatusWrite(new, old, finished())
    assert not needs_status_write(new, old, landed)  # written, the watch has not shown it yet
    assert needs_status_write(new, {"phase": "Pending", "x": 1}, landed)  # someone else wrote it since
    assert needs_status_write({"phase": "Active"}, old, landed)  # another status
    failed = StatusWrite(new, old, finished(ApiException(status=500)))
    assert needs_status_write(new, old, failed)  # a failed write is written again
    assert isinstance(failed.failure(), ApiException) and landed.failure() is None
