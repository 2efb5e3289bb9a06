"""Kubernetes Events posted in a lane of their own, so that no replica write waits behind one, and aggregated
as Kubernetes' event recorder does, so that a repeat costs a PATCH of a count instead of a new Event.

A pass hands its Events to `EventLane.post_event` and goes on at once; one daemon thread posts them in
order. Events are best effort (as the API server treats them): when the lane is full, the Event is dropped
with a log line rather than holding up a pass.

Aggregation (client-go's EventCorrelator, written for this lane): Events about the same object with the
same type, reason and message key (the message with its standalone numbers masked, so that "Scaled ... 4 -> 6"
and "Scaled ... 6 -> 8" are one) within `AGGREGATION_INTERVAL` of the last one become one Event: its `count`
goes up and its `message` and `lastTimestamp` are the latest. The keys live in an LRU of `CACHE_SIZE` entries.
The first Event of a key is posted at once; its repeats are counted in memory and written by one PATCH at most
every `REPEAT_DELAY` (a ramp of several steps costs one POST and one PATCH, not one request per step).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .kube import EventRecorder
from .priority import TransitionsFirst

log = logging.getLogger(__name__)

LANE_CAPACITY = 10_000
AGGREGATION_INTERVAL = timedelta(minutes=10)  # client-go's default aggregation window
CACHE_SIZE = 4096  # client-go's maxLruCacheEntries
REPEAT_DELAY = 10.0  # seconds: repeats of one Event are written together, at most this late

# A number standing alone (after a space, an opening bracket or the start): "4 -> 6", "(short by 3)", not the
# digits of a name such as "shop-001".
_STANDALONE_NUMBER = re.compile(r"(?<![^\s(])\d+(?:\.\d+)?")

EventKey = tuple[str, str, str, str, str, str, str, str]


@dataclass(frozen=True)
class _Event:
    namespace: str
    involved: Mapping[str, str]
    event_type: str
    reason: str
    message: str
    now: datetime


@dataclass(frozen=True)
class Posted:
    """An Event already on the API server: its name, its count and when it was last counted."""

    name: str
    count: int
    last: datetime


def message_key(message: str) -> str:
    """What messages of one kind share: the message with its standalone numbers masked."""
    return _STANDALONE_NUMBER.sub("#", message)


def event_key(
    namespace: str, involved: Mapping[str, str], event_type: str, reason: str, message: str
) -> EventKey:
    return (
        namespace,
        involved.get("apiVersion", ""),
        involved.get("kind", ""),
        involved.get("name", ""),
        involved.get("uid") or "",
        event_type,
        reason,
        message_key(message),
    )


class EventCorrelator:
    """Which Event a new one repeats: an LRU of the Events posted lately, by `event_key`. Not thread-safe (the
    lane's thread is its only user)."""

    def __init__(self, interval: timedelta = AGGREGATION_INTERVAL, capacity: int = CACHE_SIZE) -> None:
        self._interval = interval
        self._capacity = capacity
        self._recent: OrderedDict[EventKey, Posted] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    def repeats(self, key: EventKey, now: datetime) -> Posted | None:
        """The Event that one of `key` at `now` repeats; None when there is none within the interval."""
        posted = self._recent.get(key)
        if posted is None:
            return None
        if not self.within(posted.last, now):
            del self._recent[key]
            return None
        self._recent.move_to_end(key)
        return posted

    def within(self, earlier: datetime, now: datetime) -> bool:
        """Whether an Event at `now` still counts with one at `earlier`."""
        return now - earlier <= self._interval

    def remember(self, key: EventKey, posted: Posted) -> None:
        self._recent[key] = posted
        self._recent.move_to_end(key)
        while len(self._recent) > self._capacity:
            self._recent.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        self._recent.pop(key, None)


@dataclass
class _Repeat:
    """Repeats of a posted Event not written yet: their count and the latest; written by `due` (monotonic)."""

    event: _Event
    posted: Posted
    count: int
    due: float


class _Flush:
    """Asks the lane to write every repeat it holds now."""


class EventLane:
    """`EventPoster` that queues; a daemon thread posts through `recorder`, counting repeats on the Event they
    repeat. Start it with `start()`."""

    def __init__(
        self,
        recorder: EventRecorder,
        capacity: int = LANE_CAPACITY,
        correlator: EventCorrelator | None = None,
        repeat_delay: float = REPEAT_DELAY,
        kept_apart: Callable[[Mapping[str, str], str], bool] | None = None,
        priority: TransitionsFirst | None = None,
    ) -> None:
        """`kept_apart(involved, reason)`: whether such Events are each posted anew, never counted as repeats
        (those a reader relies on one by one). `priority`: each Event waits its turn behind urgent passes."""
        self._recorder = recorder
        self._queue: queue.Queue[_Event | _Flush] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._drain, name="events", daemon=True)
        self._correlator = correlator or EventCorrelator()
        self._repeat_delay = repeat_delay
        self._kept_apart = kept_apart or (lambda involved, reason: False)
        self._repeats: dict[EventKey, _Repeat] = {}  # at most one per key the correlator holds
        self._priority = priority
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
        """Until every Event queued so far was posted, and every repeat held written (or failed)."""
        self._queue.put(_Flush())
        self._queue.join()

    def _drain(self) -> None:
        while True:
            due = min((repeat.due for repeat in self._repeats.values()), default=None)
            try:
                item = self._queue.get(timeout=None if due is None else max(0.0, due - time.monotonic()))
            except queue.Empty:
                self._wait_turn()
                self._write_repeats(time.monotonic())
                continue
            self._wait_turn()
            try:
                if isinstance(item, _Flush):
                    self._write_repeats(float("inf"))
                else:
                    self._guarded(item, self._record)
            finally:
                self._queue.task_done()

    def _wait_turn(self) -> None:
        if self._priority is not None:
            self._priority.wait_turn()

    @staticmethod
    def _guarded(event: _Event, record: Callable[[_Event], None]) -> None:
        try:
            record(event)
        except Exception as err:  # best effort: a lost Event must not end the lane
            log.warning(
                "Failed to post Event %s on %s/%s: %s",
                event.reason,
                event.namespace,
                event.involved["name"],
                err,
            )

    def _record(self, event: _Event) -> None:
        if self._kept_apart(event.involved, event.reason):
            self._send(event)
            return
        key = event_key(event.namespace, event.involved, event.event_type, event.reason, event.message)
        held = self._repeats.get(key)
        if held is not None:
            if self._correlator.within(held.event.now, event.now):
                held.event, held.count = event, held.count + 1
                return
            del self._repeats[key]  # too old to count with: written now, and this one is an Event anew
            self._guarded(held.event, lambda _: self._patch(key, held))
        earlier = self._correlator.repeats(key, event.now)
        if earlier is not None:
            due = time.monotonic() + self._repeat_delay
            self._repeats[key] = _Repeat(event, earlier, earlier.count + 1, due)
            if self._repeat_delay <= 0:
                self._write_repeats(float("inf"))
            return
        self._post(key, event)

    def _write_repeats(self, until: float) -> None:
        """Write the repeats due by `until` (monotonic): one PATCH of each Event's count."""
        for key, repeat in list(self._repeats.items()):
            if repeat.due <= until:
                del self._repeats[key]
                self._guarded(repeat.event, lambda event, key=key, repeat=repeat: self._patch(key, repeat))

    def _patch(self, key: EventKey, repeat: _Repeat) -> None:
        event, name = repeat.event, repeat.posted.name
        self._correlator.forget(key)  # until the PATCH is known to have landed
        if self._recorder.patch_event(
            event.namespace, name, count=repeat.count, message=event.message, now=event.now
        ):
            self._correlator.remember(key, Posted(name, repeat.count, event.now))
        else:  # the Event expired: a new one starts the count again
            self._post(key, event)

    def _post(self, key: EventKey, event: _Event) -> None:
        name = self._send(event)
        if name is not None:
            self._correlator.remember(key, Posted(name, 1, event.now))

    def _send(self, event: _Event) -> str | None:
        return self._recorder.post_event(
            namespace=event.namespace,
            involved=event.involved,
            event_type=event.event_type,
            reason=event.reason,
            message=event.message,
            now=event.now,
        )
