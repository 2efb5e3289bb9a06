"""Kubernetes Events posted in a lane of their own, so that no replica write waits behind one.

A pass hands its Events to `EventLane.post_event` and goes on at once; one daemon thread posts them in
order. Events are best effort (as the API server treats them): when the lane is full, the Event is dropped
with a log line rather than holding up a pass.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .kube import EventPoster

log = logging.getLogger(__name__)

LANE_CAPACITY = 10_000


@dataclass(frozen=True)
class _Event:
    namespace: str
    involved: Mapping[str, str]
    event_type: str
    reason: str
    message: str
    now: datetime


class EventLane:
    """`EventPoster` that queues; a daemon thread posts through `poster`. Start it with `start()`."""

    def __init__(self, poster: EventPoster, capacity: int = LANE_CAPACITY) -> None:
        self._poster = poster
        self._queue: queue.Queue[_Event] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._drain, name="events", daemon=True)
        self.dropped = 0

    def start(self) -> EventLane:
        self._thread.start()
        return self

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
        try:
            self._queue.put_nowait(_Event(namespace, dict(involved), event_type, reason, message, now))
        except queue.Full:
            self.dropped += 1
            log.warning(
                "Dropped Event %s on %s/%s: the Event lane is full", reason, namespace, involved["name"]
            )

    def wait_empty(self) -> None:
        """Until every Event queued so far was posted (or failed)."""
        self._queue.join()

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            try:
                self._poster.post_event(
                    namespace=event.namespace,
                    involved=event.involved,
                    event_type=event.event_type,
                    reason=event.reason,
                    message=event.message,
                    now=event.now,
                )
            except Exception as err:  # best effort: a lost Event must not end the lane
                log.warning(
                    "Failed to post Event %s on %s/%s: %s",
                    event.reason,
                    event.namespace,
                    event.involved["name"],
                    err,
                )
            finally:
                self._queue.task_done()
