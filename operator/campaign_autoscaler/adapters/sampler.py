"""Prometheus sampled beside the passes: one sampler per distinct query, shared by every event that wants it.

A pass never asks Prometheus: it reads the latest sample (and its age) this module holds. Each distinct
probe (a live query, the peak of a query over a past window for a forecast, or its 1-minute curve over that
window) has one asyncio task that
asks on `interval`, at most `concurrency` requests at once, each on a daemon thread of its own: a Prometheus
that answers late or never holds up no pass, no worker thread of the passes, and not the operator's exit
(a slot is free again only when its request has ended, so a hanging Prometheus never gets more than
`concurrency` requests). A failure is asked again after
an exponential backoff with jitter (interval x 2^(failures-1), up to `MAX_BACKOFF_INTERVALS` intervals,
spread by +-20 %), so that a Prometheus that is down is not hammered by many queries in step.

Owners (events) say which probes they want with `want`; a probe no owner wants any more is stopped. An owner
is woken (its callback called, in the event loop) after every answer of a probe it wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from campaign_autoscaler.planning.decision import MetricReading, MetricSample

from .prometheus import MetricsSource, MetricsUnavailableError

DEFAULT_CONCURRENCY = 4
MAX_BACKOFF_INTERVALS = 4
JITTER = 0.2
NO_DATA = "NoData"  # a peak over a past window without any series: an answer, not a failure to ask again


@dataclass(frozen=True)
class Probe:
    """One distinct question to Prometheus: the query's value now, or (with `start` and `end`) its peak over
    that past window, or (with a `step` too) its curve over that window, one point every `step` seconds (a
    range query). A peak or a curve is asked until it is answered (a value, or no data), then kept."""

    query: str
    start: datetime | None = None
    end: datetime | None = None
    step: float | None = None

    @property
    def once(self) -> bool:
        return self.start is not None


@dataclass
class _Entry:
    since: datetime
    latest: MetricReading | None = None
    failures: int = 0
    next_at: datetime | None = None  # None: ask at once
    settled: bool = False  # a peak that was answered: never asked again
    owners: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    def sample(self) -> MetricSample:
        return MetricSample(self.since, self.latest, self.failures)


class MetricSampler:
    """The probes every owner wants, each asked on its own schedule; see the module's docstring.

    Until `start()` (in the event loop) nothing is asked by itself: `ask_due()` asks every due probe once,
    in the caller's thread (a pass replayed step by step, as the unit tests do).
    """

    def __init__(
        self,
        source: MetricsSource | None,
        clock: Callable[[], datetime],
        interval: float,
        concurrency: int = DEFAULT_CONCURRENCY,
        jitter: Callable[[], float] = lambda: random.uniform(1 - JITTER, 1 + JITTER),
    ) -> None:
        self._source = source
        self._clock = clock
        self._interval = interval
        self._concurrency = max(1, concurrency)
        self._jitter = jitter
        self._entries: dict[Probe, _Entry] = {}
        self._wanted: dict[str, set[Probe]] = {}
        self._wakers: dict[str, Callable[[], None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self.asked = 0  # requests sent, for tests and benchmarks

    # --- what owners want -------------------------------------------------------------------------------
    def want(self, owner: str, probes: Iterable[Probe], wake: Callable[[], None] | None = None) -> None:
        """From now on `owner` wants exactly `probes`; the probes nobody wants any more are stopped."""
        before = self._wanted.pop(owner, set())
        now_wanted = set(probes)
        self._wakers.pop(owner, None)
        if now_wanted:
            self._wanted[owner] = now_wanted
            if wake is not None:
                self._wakers[owner] = wake
        for probe in now_wanted - before:
            entry = self._entries.get(probe)
            if entry is None:
                entry = self._entries[probe] = _Entry(since=self._clock())
                self._launch(probe, entry)
            entry.owners.add(owner)
        for probe in before - now_wanted:
            self._drop_owner(probe, owner)

    def forget(self, owner: str) -> None:
        self.want(owner, ())

    def samples(self, probes: Iterable[Probe]) -> dict[Probe, MetricSample]:
        """The latest sample of each probe that has an entry."""
        return {probe: entry.sample() for probe in probes if (entry := self._entries.get(probe))}

    def probes(self) -> set[Probe]:
        return set(self._entries)

    def _drop_owner(self, probe: Probe, owner: str) -> None:
        entry = self._entries.get(probe)
        if entry is None:
            return
        entry.owners.discard(owner)
        if not entry.owners:
            del self._entries[probe]
            if entry.task is not None:
                entry.task.cancel()

    # --- asking -----------------------------------------------------------------------------------------
    def ask_due(self) -> None:
        """Ask every probe that is due, now, in this thread."""
        now = self._clock()
        for probe, entry in list(self._entries.items()):
            if not entry.settled and (entry.next_at is None or entry.next_at <= now):
                self._record(probe, entry, self._ask(probe))

    def start(self) -> None:
        """Run every probe as a task of the running event loop, from now until `stop()`."""
        self._slots = asyncio.Semaphore(self._concurrency)
        for probe, entry in self._entries.items():
            self._launch(probe, entry)

    async def stop(self) -> None:
        tasks = [entry.task for entry in self._entries.values() if entry.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._slots = None  # a request in flight is abandoned, not awaited: it may hang until its timeout

    def _launch(self, probe: Probe, entry: _Entry) -> None:
        if self._slots is not None and entry.task is None and not entry.settled:
            entry.task = asyncio.get_running_loop().create_task(
                self._run(probe, entry), name=f"sampler {probe.query[:60]}"
            )

    async def _run(self, probe: Probe, entry: _Entry) -> None:
        slots = self._slots
        assert slots is not None
        while not entry.settled:
            if entry.next_at is not None:
                delay = (entry.next_at - self._clock()).total_seconds()
                if delay > 0:
                    await asyncio.sleep(delay)
            await slots.acquire()
            answer = self._ask_in_thread(probe)
            answer.add_done_callback(lambda _: slots.release())
            # Shielded: a probe stopped meanwhile leaves its request to end on its own, slot included.
            reading = await asyncio.shield(answer)
            self._record(probe, entry, reading)
            for owner in list(entry.owners):
                wake = self._wakers.get(owner)
                if wake is not None:
                    wake()

    def _ask_in_thread(self, probe: Probe) -> asyncio.Future[MetricReading]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[MetricReading] = loop.create_future()

        def settle(reading: MetricReading) -> None:
            if not answer.done():
                answer.set_result(reading)

        def ask() -> None:
            try:
                reading = self._ask(probe)
            except Exception as err:  # e.g. an unreadable token file: a failure like any other, not a hang
                reading = MetricReading(self._clock(), None, "Error", str(err) or type(err).__name__)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, reading)

        threading.Thread(target=ask, name="prometheus", daemon=True).start()
        return answer

    def _ask(self, probe: Probe) -> MetricReading:
        """One request; its answer (or failure) stamped with the moment it came."""
        self.asked += 1
        if self._source is None:
            detail = "the operator runs without --prometheus-url"
            return MetricReading(self._clock(), None, "NoPrometheus", detail)
        try:
            if probe.start is not None and probe.end is not None and probe.step is not None:
                return self._curve(probe.query, probe.start, probe.end, probe.step)
            if probe.start is not None and probe.end is not None:
                peak = self._source.peak(probe.query, probe.start, probe.end)
                if peak is None:
                    return MetricReading(self._clock(), None, NO_DATA, "no series in that window")
                return MetricReading(self._clock(), peak)
            return MetricReading(self._clock(), self._source.value(probe.query))
        except MetricsUnavailableError as err:
            return MetricReading(self._clock(), None, err.reason, err.detail)

    def _curve(self, query: str, start: datetime, end: datetime, step: float) -> MetricReading:
        """A curve's answer: its points, and its highest finite point as the value."""
        assert self._source is not None
        points = tuple(self._source.series(query, start, end, step))
        if not points:
            return MetricReading(self._clock(), None, NO_DATA, "no series in that window")
        finite = [value for _, value in points if math.isfinite(value)]
        if not finite:
            detail = f"query {query!r} returned only NaN over that window"
            return MetricReading(self._clock(), None, "NaN", detail)
        return MetricReading(self._clock(), max(finite), points=points)

    def _record(self, probe: Probe, entry: _Entry, reading: MetricReading) -> None:
        entry.latest = reading
        if reading.failed and reading.failure_reason != NO_DATA:
            entry.failures += 1
            entry.next_at = reading.at + self.backoff(entry.failures)
            return
        entry.failures = 0
        entry.settled = probe.once
        entry.next_at = reading.at + timedelta(seconds=self._interval)

    def backoff(self, failures: int) -> timedelta:
        """The delay after `failures` failures in a row: exponential from one interval, capped, jittered."""
        factor = min(MAX_BACKOFF_INTERVALS, 2 ** (failures - 1))
        return timedelta(seconds=self._interval * factor * self._jitter())
